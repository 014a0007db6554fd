// SPDX-License-Identifier: GPL-2.0

//! Mount parameters.
//!
//! A file system lists the parameters it accepts in a [`SpecTable`] (its
//! [`FileSystem::PARAMS`](super::FileSystem::PARAMS)); the VFS matches each parameter given to
//! `mount(2)`/`fsconfig(2)` against the table and hands the match to
//! [`FileSystem::parse_param`](super::FileSystem::parse_param) as a [`Value`].
//!
//! C header: [`include/linux/fs_parser.h`](srctree/include/linux/fs_parser.h).

use crate::{
    bindings,
    prelude::*, //
};
use core::ptr;

/// The specification of one mount parameter.
///
/// # Invariants
///
/// `0` is either the all-zero terminator or names a parameter with a `'static` name and one of
/// the C parameter type checkers.
#[repr(transparent)]
pub struct Spec(bindings::fs_parameter_spec);

impl Spec {
    const fn new(name: &'static CStr, opt: u8, typ: bindings::fs_param_type) -> Self {
        Self(bindings::fs_parameter_spec {
            name: crate::str::as_char_ptr_in_const_context(name),
            type_: typ,
            opt,
            flags: 0,
            data: ptr::null(),
        })
    }

    /// A parameter with a string value (`name=text`).
    pub const fn string(name: &'static CStr, opt: u8) -> Self {
        Self::new(name, opt, Some(bindings::fs_param_is_string))
    }

    /// The terminator that must end every table.
    pub const END: Self = Self(bindings::fs_parameter_spec {
        name: ptr::null(),
        type_: None,
        opt: 0,
        flags: 0,
        data: ptr::null(),
    });
}

/// A table of mount parameter specifications, ending with [`Spec::END`].
///
/// # Invariants
///
/// The last element of `0` is [`Spec::END`].
#[derive(Copy, Clone)]
pub struct SpecTable<'a>(&'a [Spec]);

impl<'a> SpecTable<'a> {
    /// Creates a table from `specs`, whose last element must be [`Spec::END`].
    ///
    /// In a constant, a missing terminator is a build error.
    pub const fn new(specs: &'a [Spec]) -> Self {
        assert!(!specs.is_empty() && specs[specs.len() - 1].0.name.is_null());
        Self(specs)
    }

    /// A table that accepts no parameters.
    pub const fn empty() -> SpecTable<'static> {
        SpecTable(&[Spec::END])
    }

    /// Returns the C table, terminated.
    pub const fn as_ptr(&self) -> *const bindings::fs_parameter_spec {
        self.0.as_ptr().cast()
    }
}

/// The value of a matched mount parameter.
///
/// The accessor that applies depends on the [`Spec`] constructor of the matched entry.
pub struct Value<'a> {
    param: &'a bindings::fs_parameter,
}

impl<'a> Value<'a> {
    /// Creates a value from a C parameter that `fs_parse()` matched.
    ///
    /// # Safety
    ///
    /// `fs_parse()` must have matched `param` against a [`SpecTable`].
    pub(crate) unsafe fn from_raw(param: &'a bindings::fs_parameter) -> Self {
        Self { param }
    }

    /// For a [`Spec::string`]: the value.
    pub fn as_str(&self) -> Option<&'a CStr> {
        if self.param.type_() != bindings::fs_value_type_fs_value_is_string {
            return None;
        }
        // SAFETY: For a string parameter, `string` points to a NUL-terminated string that lives
        // as long as the parameter.
        let s = unsafe { self.param.__bindgen_anon_1.string };
        if s.is_null() {
            return None;
        }
        // SAFETY: `s` is a valid NUL-terminated string (see above).
        Some(unsafe { CStr::from_char_ptr(s) })
    }
}
