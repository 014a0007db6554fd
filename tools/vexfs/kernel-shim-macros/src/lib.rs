// SPDX-License-Identifier: GPL-2.0

//! User-space stand-in for the procedural macros of the kernel crate that the
//! shared VexFS engine code (`fs/vexfs/vecmath.rs`, `fs/vexfs/hnsw.rs`) uses.
//!
//! No dependencies (no `syn`, no `quote`): the macros only wrap token streams.

use proc_macro::TokenStream;

/// `#[kunit_tests(suite)]` on a test module.
///
/// In the kernel this turns the module's `#[test]` functions into a KUnit
/// suite named `suite`. Here the module is emitted unchanged behind
/// `#[cfg(test)]`, so its `#[test]` functions are ordinary `cargo test`
/// cases (their names carry the module path, not the suite name).
#[proc_macro_attribute]
pub fn kunit_tests(attr: TokenStream, item: TokenStream) -> TokenStream {
    let suite = attr.to_string();
    if suite.is_empty() || !suite.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return r#"compile_error!("kunit_tests: expected a suite name, e.g. #[kunit_tests(vexfs_x)]");"#
            .parse()
            .unwrap();
    }
    let mut out: TokenStream = "#[cfg(test)]".parse().unwrap();
    out.extend(item);
    out
}
