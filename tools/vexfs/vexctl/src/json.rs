// SPDX-License-Identifier: GPL-2.0

//! A minimal JSON writer for `--json` output.

use std::fmt::{
    self,
    Write, //
};

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A number; NaN and infinities are written as `null`.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in insertion order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn obj() -> Self {
        Json::Obj(Vec::new())
    }

    /// Adds `key: value` to an object (no-op on other values).
    pub fn set(mut self, key: &str, value: impl Into<Json>) -> Self {
        if let Json::Obj(v) = &mut self {
            v.push((key.to_string(), value.into()));
        }
        self
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Json {
            fn from(n: $t) -> Self {
                Json::Int(i128::from(n))
            }
        }
    )*};
}
from_int!(u8, u32, u64, i32, i64);

impl From<usize> for Json {
    fn from(n: usize) -> Self {
        Json::Int(i128::try_from(n).unwrap_or(i128::MAX))
    }
}

impl From<f64> for Json {
    fn from(n: f64) -> Self {
        Json::Num(n)
    }
}

impl From<f32> for Json {
    fn from(n: f32) -> Self {
        // Through the shortest text of the binary32 value, so that 0.1f32 is
        // written as 0.1 and not as the binary64 value it widens to.
        Json::Num(n.to_string().parse().unwrap_or(f64::NAN))
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Json::Str(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Json::Str(s)
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Self {
        Json::Arr(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(v: Option<T>) -> Self {
        v.map_or(Json::Null, Into::into)
    }
}

fn write_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{}", b),
            Json::Int(n) => write!(f, "{}", n),
            Json::Num(n) if n.is_finite() => {
                // `{}` gives the shortest text that reads back as the same
                // value, never with an exponent: valid JSON.
                write!(f, "{}", n)
            }
            Json::Num(_) => f.write_str("null"),
            Json::Str(s) => write_str(f, s),
            Json::Arr(v) => {
                f.write_char('[')?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", x)?;
                }
                f.write_char(']')
            }
            Json::Obj(v) => {
                f.write_char('{')?;
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_str(f, k)?;
                    write!(f, ": {}", x)?;
                }
                f.write_char('}')
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json() {
        let j = Json::obj()
            .set("a", 1u32)
            .set("b", "x\"y\\\n\u{1}")
            .set("c", vec![0.5f64, f64::NAN])
            .set("d", Json::obj().set("e", true))
            .set("f", None::<u32>)
            .set("g", u64::MAX);
        assert_eq!(
            j.to_string(),
            r#"{"a": 1, "b": "x\"y\\\n\u0001", "c": [0.5, null], "d": {"e": true}, "f": null, "g": 18446744073709551615}"#
        );
        assert_eq!(Json::from(1e-7f64).to_string(), "0.0000001");
        assert_eq!(Json::from(0.1f32).to_string(), "0.1");
        assert_eq!(Json::from(f32::INFINITY).to_string(), "null");
    }
}
