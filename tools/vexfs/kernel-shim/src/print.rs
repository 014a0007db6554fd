// SPDX-License-Identifier: GPL-2.0

//! The `pr_*!` macros of the kernel (`rust/kernel/print.rs`): messages go to
//! standard error with their log level, `pr_debug!` only type-checks its
//! arguments (as in the kernel without `DEBUG` or dynamic debug).

#[doc(hidden)]
pub fn call_printk(level: &str, args: core::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = write!(std::io::stderr(), "vexfs[{}]: {}", level, args);
}

#[doc(hidden)]
#[macro_export]
macro_rules! print_macro (
    ($level:expr, $($arg:tt)+) => (
        $crate::print::call_printk($level, ::core::format_args!($($arg)+))
    );
);

/// Prints an emergency-level message (level 0).
#[macro_export]
macro_rules! pr_emerg (($($arg:tt)*) => ($crate::print_macro!("emerg", $($arg)*)));
/// Prints an alert-level message (level 1).
#[macro_export]
macro_rules! pr_alert (($($arg:tt)*) => ($crate::print_macro!("alert", $($arg)*)));
/// Prints a critical-level message (level 2).
#[macro_export]
macro_rules! pr_crit (($($arg:tt)*) => ($crate::print_macro!("crit", $($arg)*)));
/// Prints an error-level message (level 3).
#[macro_export]
macro_rules! pr_err (($($arg:tt)*) => ($crate::print_macro!("err", $($arg)*)));
/// Prints a warning-level message (level 4).
#[macro_export]
macro_rules! pr_warn (($($arg:tt)*) => ($crate::print_macro!("warn", $($arg)*)));
/// Prints a notice-level message (level 5).
#[macro_export]
macro_rules! pr_notice (($($arg:tt)*) => ($crate::print_macro!("notice", $($arg)*)));
/// Prints an info-level message (level 6).
#[macro_export]
macro_rules! pr_info (($($arg:tt)*) => ($crate::print_macro!("info", $($arg)*)));
/// Prints a debug-level message (level 7): compiled out, arguments type-checked.
#[macro_export]
macro_rules! pr_debug (($($arg:tt)*) => (
    if false {
        $crate::print_macro!("debug", $($arg)*)
    }
));
