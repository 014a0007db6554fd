// SPDX-License-Identifier: GPL-2.0

//! The kernel prelude (`rust/kernel/prelude.rs`), as far as the shim has it.
//!
//! ```
//! use kernel::prelude::*;
//! ```

#[doc(no_inline)]
pub use core::{
    mem::{align_of, align_of_val, size_of, size_of_val},
    pin::Pin,
};

#[doc(no_inline)]
pub use crate::ffi::{
    c_char, c_int, c_long, c_longlong, c_schar, c_short, c_uchar, c_uint, c_ulong, c_ulonglong,
    c_ushort, c_void, CStr,
};

#[doc(no_inline)]
pub use kernel_shim_macros::kunit_tests;

#[doc(no_inline)]
pub use crate::{
    alloc::{flags::*, Box, KBox, KVBox, KVVec, KVec, VBox, VVec, Vec},
    error::{code::*, Error, Result},
    pr_alert, pr_crit, pr_debug, pr_emerg, pr_err, pr_info, pr_notice, pr_warn,
};
