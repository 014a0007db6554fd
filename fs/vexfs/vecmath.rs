// SPDX-License-Identifier: GPL-2.0

//! Integer arithmetic of vector distances: the kernel does no floating point.
//!
//! # Representation
//!
//! Every vector, stored or queried, is held as a *block floating-point* vector: one scale `s`
//! (an `i32`) and `dim` signed 30-bit integer mantissas `m[i]` (`i32`, `|m[i]| <= 2^30`), with
//! `x[i] ~= m[i] * 2^-s`. For binary32 input, [`Fixed::from_f32_bits`] decodes each IEEE-754
//! bit pattern with integer code (normal and subnormal numbers, both zeros; NaN and infinities
//! are refused with `EINVAL`) into `M * 2^E` with `M < 2^24`, picks `s` so that the largest
//! element magnitude is in `[2^29, 2^30)`, and rounds each element to nearest (ties to even)
//! on that grid. The elements within a factor 2^6 of the largest are therefore exact (a
//! binary32 mantissa has 24 bits) and every element is off by at most
//! `delta = 2^-s / 2 <= 2^-30 * max|x|`. Signed 8-bit input is shifted the same way, exactly.
//!
//! The index uses this one representation for graph traversal and for the final ranking: it
//! takes as much memory as the binary32 input (4 bytes per element, plus 12 per vector), and
//! it makes every distance exact, so HNSW and exact search rank alike and no rescoring pass is
//! needed. A compressed representation for traversal (e.g. `i8` with a per-collection scale,
//! a quarter of the memory) with exact rescoring of the candidates would fit behind
//! [`distance`] if memory becomes the limit.
//!
//! # Distances
//!
//! Computed exactly on the mantissas, in `i64` products and `i128` sums (`dim <= 4096`):
//!
//! - L2 (squared): both vectors are brought to the coarser of their two grids (the finer one
//!   rounded once more, error `delta' = max(delta_x, delta_y)`), then `sum (a - b)^2`, exact:
//!   `|a - b| <= 2^31`, a square is below `2^62`.
//! - Inner product (negated): `-sum m_x * m_y * 2^-(s_x + s_y)`, exact.
//! - Cosine: `1 - D / sqrt(A * B)` with `D = sum m_x m_y`, `A = sum m_x^2`, `B = sum m_y^2`
//!   (the scales cancel). The norms are integer square roots of `A * 2^40` (Newton's method
//!   on `u128`), and the quotient is taken in Q62, so the arithmetic adds less than `2^-45`. A
//!   zero vector has distance 1 to everything.
//!
//! A distance is a [`Value`] `v * 2^-e` (`v: i128`). Results are ordered by [`Value::key`],
//! an `i64` that orders like the value (its binary64 bit pattern, truncated, made monotone),
//! and returned as binary32 bit patterns rounded to nearest even by [`Value::to_f32_bits`]
//! (overflow gives `+inf`, which only squared L2 distances of vectors beyond `1.8e19` reach).
//!
//! # Error bound against a binary64 reference
//!
//! With `delta_x <= 2^-30 max|x|`, `delta_y <= 2^-30 max|y|`, `n = dim`, and `d_ref` the
//! distance computed in binary64 from the same binary32 inputs (whose own error, `~n 2^-53`
//! relative, is negligible here), the returned distance `d` satisfies
//!
//! - inner product: `|d - d_ref| <= ||x||_1 delta_y + ||y||_1 delta_x + n delta_x delta_y
//!   + 2^-24 |d_ref|`;
//! - L2: with `delta = max(delta_x, delta_y)` (half the step of the coarser grid, which both
//!   vectors end up on: one element difference is off by at most `3 delta`, the finer vector
//!   being rounded twice), `|d - d_ref| <= 6 delta ||x - y||_1 + 9 n delta^2 + 2^-24 |d_ref|`;
//! - cosine: with `r_x = sqrt(n) delta_x / ||x||_2` and `r_y` alike (relative perturbations
//!   of the vectors), `|d - d_ref| <= 2 (r_x + r_y) + 2^-44 + 2^-24 |d_ref|` to first order;
//!
//! the last term being the final rounding to binary32. In practice (`max|x| ~ 3 ||x||_2 /
//! sqrt(n)`) this is a few units in the 7th significant digit or better: results agree with
//! binary64 brute force except for near-ties. For `i8` collections the L2 and inner product
//! distances are exact before the final rounding, and the cosine within `2^-44`.

use kernel::prelude::*;

/// Mantissa bits of the block floating-point representation (`|m| <= 2^MANT_BITS`).
pub(crate) const MANT_BITS: i32 = 30;

/// A decoded binary32 number: `mant * 2^exp`, `mant < 2^24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Sign (true for negative, including `-0`).
    pub(crate) neg: bool,
    /// Integer significand, `< 2^24`.
    pub(crate) mant: u32,
    /// Power of two of the least significant bit.
    pub(crate) exp: i32,
}

/// Decodes IEEE-754 binary32 `bits`; `EINVAL` for NaN and infinities.
pub(crate) fn decode_f32(bits: u32) -> Result<Decoded> {
    let neg = bits >> 31 != 0;
    let e = ((bits >> 23) & 0xff) as i32;
    let f = bits & 0x7f_ffff;
    match e {
        0xff => Err(EINVAL),
        0 => Ok(Decoded {
            neg,
            mant: f,
            exp: -149,
        }),
        _ => Ok(Decoded {
            neg,
            mant: f | 0x80_0000,
            exp: e - 150,
        }),
    }
}

/// Number of significant bits of `v`.
fn bitlen(v: u128) -> i32 {
    128 - v.leading_zeros() as i32
}

/// `v * 2^sh` rounded to nearest, ties to even; `sh` may be negative (a right shift).
/// The caller guarantees the result fits (left shifts only of small values).
fn shift_round(v: u128, sh: i32) -> u128 {
    if sh >= 0 {
        if sh >= 128 {
            return if v == 0 { 0 } else { u128::MAX };
        }
        return v << sh;
    }
    let r = -sh;
    if r > 128 {
        return 0;
    }
    if r == 128 {
        // v < 2^128, so v * 2^-128 < 1: rounds to 1 only above one half.
        return u128::from(v > (1u128 << 127));
    }
    let q = v >> r;
    let rem = v & ((1u128 << r) - 1);
    let half = 1u128 << (r - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// A vector in block floating point: `x[i] = m[i] * 2^-scale` (see the module documentation).
pub(crate) struct Fixed;

impl Fixed {
    /// Converts binary32 bit patterns into `out` (as long as `bits`) and returns the scale.
    /// Fails with `EINVAL` on NaN or infinity.
    pub(crate) fn from_f32_bits(
        bits: impl Iterator<Item = u32> + Clone,
        out: &mut [i32],
    ) -> Result<i32> {
        // Position just above the most significant bit of the largest element.
        let mut top = i32::MIN;
        for b in bits.clone() {
            let d = decode_f32(b)?;
            if d.mant != 0 {
                top = top.max(d.exp + bitlen(u128::from(d.mant)));
            }
        }
        if top == i32::MIN {
            out.iter_mut().for_each(|o| *o = 0);
            return Ok(0);
        }
        let scale = MANT_BITS - top;
        for (b, o) in bits.zip(out.iter_mut()) {
            let d = decode_f32(b)?;
            let m = shift_round(u128::from(d.mant), d.exp + scale) as i32;
            *o = if d.neg { -m } else { m };
        }
        Ok(scale)
    }

    /// Converts signed 8-bit elements, exactly: shifted left so that the largest magnitude is
    /// in `[2^29, 2^30)`, like binary32 input. Returns the scale.
    pub(crate) fn from_i8(elems: impl Iterator<Item = i8> + Clone, out: &mut [i32]) -> i32 {
        let max = elems.clone().map(|e| e.unsigned_abs()).max().unwrap_or(0);
        if max == 0 {
            out.iter_mut().for_each(|o| *o = 0);
            return 0;
        }
        let scale = MANT_BITS - bitlen(u128::from(max));
        for (e, o) in elems.zip(out.iter_mut()) {
            *o = i32::from(e) << scale;
        }
        scale
    }
}

/// The value of a distance: `v * 2^-e`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Value {
    /// Signed integer numerator.
    pub(crate) v: i128,
    /// Power of two of the denominator.
    pub(crate) e: i32,
}

impl Value {
    /// An `i64` that orders like the value: the binary64 bit pattern of the value truncated
    /// towards zero (monotone), with negative numbers mapped below positive ones.
    pub(crate) fn key(self) -> i64 {
        if self.v == 0 {
            return 0;
        }
        let a = self.v.unsigned_abs();
        let l = bitlen(a);
        // Unbiased binary64 exponent of the value.
        let exp = (l - 1 - self.e).clamp(-1022, 1023);
        // 52 fraction bits, truncated.
        let frac = if l > 52 {
            (a >> (l - 53)) as u64
        } else {
            (a << (53 - l)) as u64
        } & ((1u64 << 52) - 1);
        let bits = (((exp + 1023) as u64) << 52) | frac;
        let k = bits as i64;
        if self.v < 0 {
            -k
        } else {
            k
        }
    }

    /// The value as a binary32 bit pattern, rounded to nearest (ties to even).
    pub(crate) fn to_f32_bits(self) -> u32 {
        let sign = if self.v < 0 { 1u32 << 31 } else { 0 };
        let a = self.v.unsigned_abs();
        if a == 0 {
            return 0;
        }
        let l = bitlen(a);
        let exp = l - 1 - self.e;
        if exp > 127 {
            return sign | 0x7f80_0000;
        }
        // The result is `n * 2^-units` with `n < 2^24` (or `< 2^23` for subnormals).
        let units = if exp >= -126 { 23 - exp } else { 149 };
        let n = shift_round(a, units - self.e);
        let bits = if exp >= -126 {
            let (n, exp) = if n >= 1 << 24 {
                (n >> 1, exp + 1)
            } else {
                (n, exp)
            };
            if exp > 127 {
                return sign | 0x7f80_0000;
            }
            (((exp + 127) as u32) << 23) | (n as u32 & 0x7f_ffff)
        } else {
            // Subnormal; `n == 2^23` is the smallest normal number, with the same encoding.
            n as u32
        };
        sign | bits
    }
}

/// Integer square root of `v` (floor), digit by digit: no division (the kernel has no 128-bit
/// division).
pub(crate) fn isqrt(v: u128) -> u128 {
    let mut rem = v;
    let mut root = 0u128;
    // The largest power of four not above `v`.
    let mut bit = if v == 0 {
        return 0;
    } else {
        1u128 << ((bitlen(v) - 1) & !1)
    };
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// `n / d` (floor) by binary long division: the kernel has no 128-bit division. `d != 0`.
fn div_u128(n: u128, d: u128) -> u128 {
    if d == 0 {
        return u128::MAX;
    }
    if n < d {
        return 0;
    }
    let shift = d.leading_zeros() - n.leading_zeros();
    let mut d = d << shift;
    let mut r = n;
    let mut q = 0u128;
    for _ in 0..=shift {
        q <<= 1;
        if r >= d {
            r -= d;
            q |= 1;
        }
        d >>= 1;
    }
    q
}

/// The norm factor of a vector for the cosine distance: `isqrt(sum m^2 * 2^40)`, about
/// `||m|| * 2^20` (at most `2^20 * 2^36` for 4096 30-bit mantissas).
pub(crate) fn norm_factor(m: &[i32]) -> u64 {
    let mut sum: u128 = 0;
    for &x in m {
        let x = i64::from(x);
        sum += (x * x) as u128;
    }
    isqrt(sum << 40) as u64
}

/// The distance metrics (`VEXFS_METRIC_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Metric {
    /// Squared Euclidean distance.
    L2,
    /// Negated inner product.
    Ip,
    /// One minus the cosine similarity.
    Cosine,
}

/// A vector borrowed for a distance computation.
#[derive(Clone, Copy)]
pub(crate) struct VecRef<'a> {
    /// Mantissas.
    pub(crate) m: &'a [i32],
    /// Scale: `x = m * 2^-scale`.
    pub(crate) scale: i32,
    /// [`norm_factor`] of `m` (cosine only, 0 otherwise).
    pub(crate) norm: u64,
}

/// Brings mantissa `m` from scale `from` to the coarser scale `to <= from`, rounding.
fn align(m: i32, shift: i32) -> i64 {
    if shift == 0 {
        return i64::from(m);
    }
    let r = shift_round(u128::from(m.unsigned_abs()), -shift) as i64;
    if m < 0 {
        -r
    } else {
        r
    }
}

/// The distance between `a` and `b` (of the same length) under `metric`.
pub(crate) fn distance(metric: Metric, a: VecRef<'_>, b: VecRef<'_>) -> Value {
    match metric {
        Metric::L2 => {
            // Coarser grid: the smaller scale.
            let s = a.scale.min(b.scale);
            let (sa, sb) = (a.scale - s, b.scale - s);
            let mut sum: i128 = 0;
            if sa == 0 && sb == 0 {
                for (&x, &y) in a.m.iter().zip(b.m.iter()) {
                    let d = i64::from(x) - i64::from(y);
                    sum += i128::from(d * d);
                }
            } else {
                for (&x, &y) in a.m.iter().zip(b.m.iter()) {
                    let d = align(x, sa) - align(y, sb);
                    sum += i128::from(d * d);
                }
            }
            Value { v: sum, e: 2 * s }
        }
        Metric::Ip => Value {
            v: -dot(a.m, b.m),
            e: a.scale + b.scale,
        },
        Metric::Cosine => {
            const ONE: i128 = 1 << 62;
            let den = u128::from(a.norm) * u128::from(b.norm);
            let d = dot(a.m, b.m);
            if den == 0 {
                return Value { v: ONE, e: 62 };
            }
            // cos * 2^62 = d * 2^40 * 2^62 / den, with the shifts split so that nothing
            // overflows and the divisor keeps at least 64 significant bits.
            let ad = d.unsigned_abs();
            let up = 126 - bitlen(ad).max(1);
            let down = 102 - up;
            let num = ad << up;
            let div = if down >= 0 { den >> down } else { den << -down };
            let q = div_u128(num, div.max(1)).min(ONE as u128) as i128;
            let cos = if d < 0 { -q } else { q };
            Value {
                v: ONE - cos,
                e: 62,
            }
        }
    }
}

/// Exact dot product of two mantissa vectors.
fn dot(a: &[i32], b: &[i32]) -> i128 {
    let mut sum: i128 = 0;
    for (&x, &y) in a.iter().zip(b.iter()) {
        sum += i128::from(i64::from(x) * i64::from(y));
    }
    sum
}

#[kunit_tests(vexfs_vecmath)]
mod tests {
    use super::*;

    fn conv(bits: &[u32], out: &mut [i32]) -> Result<i32> {
        Fixed::from_f32_bits(bits.iter().copied(), out)
    }

    #[test]
    fn decode_edge_cases() {
        assert_eq!(decode_f32(0x7f80_0000), Err(EINVAL)); // +inf
        assert_eq!(decode_f32(0xff80_0000), Err(EINVAL)); // -inf
        assert_eq!(decode_f32(0x7fc0_0000), Err(EINVAL)); // NaN
        assert_eq!(decode_f32(0xffff_ffff), Err(EINVAL)); // NaN with payload
        let z = decode_f32(0x8000_0000).unwrap(); // -0
        assert!(z.neg && z.mant == 0);
        let one = decode_f32(0x3f80_0000).unwrap(); // 1.0
        assert_eq!((one.mant, one.exp), (1 << 23, -23));
        let sub = decode_f32(0x0000_0001).unwrap(); // smallest subnormal 2^-149
        assert_eq!((sub.mant, sub.exp), (1, -149));
        let max = decode_f32(0x7f7f_ffff).unwrap(); // f32::MAX
        assert_eq!((max.mant, max.exp), (0xff_ffff, 104));
    }

    #[test]
    fn f32_conversion() {
        let mut out = [0i32; 4];
        // 1.0, -0.5, 0.0, -0.0
        let s = conv(&[0x3f80_0000, 0xbf00_0000, 0, 0x8000_0000], &mut out).unwrap();
        assert_eq!(s, 29);
        assert_eq!(out, [1 << 29, -(1 << 28), 0, 0]);
        // Subnormals only: 2^-149 and 3 * 2^-149.
        let s = conv(&[1, 3, 0, 0], &mut out).unwrap();
        assert_eq!(s, 30 - (-149 + 2));
        assert_eq!(out, [1 << 28, 3 << 28, 0, 0]);
        // Large range: 2^100 and 1.0 (rounds to 0 on the grid of 2^100).
        let s = conv(&[0x7180_0000, 0x3f80_0000, 0, 0], &mut out).unwrap();
        assert_eq!(s, 29 - 100);
        assert_eq!(out, [1 << 29, 0, 0, 0]);
        // f32::MAX and -f32::MAX.
        let s = conv(&[0x7f7f_ffff, 0xff7f_ffff, 0, 0], &mut out).unwrap();
        assert_eq!(s, 30 - 128);
        assert_eq!(out, [0xff_ffff << 6, -(0xff_ffff << 6), 0, 0]);
        // NaN anywhere is refused.
        assert_eq!(conv(&[0, 0x7fc0_0000, 0, 0], &mut out), Err(EINVAL));
        // All zero.
        assert_eq!(conv(&[0, 0x8000_0000, 0, 0], &mut out), Ok(0));
        assert_eq!(out, [0; 4]);
    }

    #[test]
    fn shift_rounding() {
        assert_eq!(shift_round(5, -1), 2); // 2.5 -> 2
        assert_eq!(shift_round(7, -1), 4); // 3.5 -> 4
        assert_eq!(shift_round(6, -2), 2); // 1.5 -> 2
        assert_eq!(shift_round(9, -3), 1); // 1.125 -> 1
        assert_eq!(shift_round(3, 4), 48);
        assert_eq!(shift_round(u128::MAX, -200), 0);
    }

    #[test]
    fn to_f32() {
        let f = |v: i128, e: i32| Value { v, e }.to_f32_bits();
        assert_eq!(f(1, 0), 0x3f80_0000);
        assert_eq!(f(-3, 1), 0xbfc0_0000); // -1.5
        assert_eq!(f(0, 5), 0);
        assert_eq!(f(1, 149), 1); // smallest subnormal
        assert_eq!(f(1, 150), 0); // half of it: ties to even -> 0
        assert_eq!(f(3, 150), 2); // 1.5 units -> 2
        assert_eq!(f(1, 126), 0x0080_0000); // smallest normal
        assert_eq!(f((1 << 24) + 1, 0), 0x4b80_0000); // 16777217 -> 16777216 (tie, even)
        assert_eq!(f((1 << 24) + 3, 0), 0x4b80_0002); // 16777219 -> 16777220
        assert_eq!(f(1, -128), 0x7f80_0000); // 2^128 overflows
        assert_eq!(f((1 << 25) - 1, -103), 0x7f80_0000); // rounds up past f32::MAX
        assert_eq!(f(0xff_ffff, -104), 0x7f7f_ffff); // f32::MAX
        assert_eq!(f(1 << 62, 62), 0x3f80_0000);
    }

    #[test]
    fn keys_are_monotone() {
        let vals = [
            Value { v: -5, e: -3 },
            Value { v: -1, e: 0 },
            Value { v: -1, e: 10 },
            Value { v: 0, e: 0 },
            Value { v: 1, e: 100 },
            Value { v: 3, e: 2 },
            Value { v: 1, e: 0 },
            Value {
                v: (1 << 60) + 1,
                e: 60,
            },
            Value {
                v: 1 << 100,
                e: -50,
            },
        ];
        for w in vals.windows(2) {
            assert!(w[0].key() <= w[1].key());
        }
        assert!(Value { v: 1, e: 0 }.key() < Value { v: 3, e: 1 }.key());
        assert_eq!(Value { v: 2, e: 1 }.key(), Value { v: 1, e: 0 }.key());
    }

    #[test]
    fn integer_sqrt() {
        assert_eq!(isqrt(0), 0);
        assert_eq!(isqrt(1), 1);
        assert_eq!(isqrt(3), 1);
        assert_eq!(isqrt(4), 2);
        assert_eq!(isqrt(u128::MAX), u128::from(u64::MAX));
        assert_eq!(div_u128(100, 7), 14);
        assert_eq!(div_u128(u128::MAX, 1), u128::MAX);
        assert_eq!(
            div_u128(1 << 126, 3),
            0x1555_5555_5555_5555_5555_5555_5555_5555
        );
        assert_eq!(div_u128(5, 9), 0);
        assert_eq!(isqrt(15), 3);
        assert_eq!(isqrt(16), 4);
        assert_eq!(isqrt(u128::from(u64::MAX)), u128::from(u32::MAX));
        let big = (1u128 << 100) + 12345;
        let r = isqrt(big);
        assert!(r * r <= big && (r + 1) * (r + 1) > big);
    }

    #[test]
    fn distances() {
        // x = (1, 2, 3), y = (4, -5, 6) as i8: scales 28 and 27.
        let (mut x, mut y) = ([0i32; 3], [0i32; 3]);
        let sx = Fixed::from_i8([1i8, 2, 3].into_iter(), &mut x);
        let sy = Fixed::from_i8([4i8, -5, 6].into_iter(), &mut y);
        assert_eq!((sx, sy), (28, 27));
        assert_eq!(x, [1 << 28, 2 << 28, 3 << 28]);
        let xr = VecRef {
            m: &x,
            scale: sx,
            norm: norm_factor(&x),
        };
        let yr = VecRef {
            m: &y,
            scale: sy,
            norm: norm_factor(&y),
        };
        // L2: 9 + 49 + 9 = 67, on the grid of y (2^-27).
        assert_eq!(distance(Metric::L2, xr, yr), Value { v: 67 << 54, e: 54 });
        assert_eq!(distance(Metric::L2, xr, yr).to_f32_bits(), 0x4286_0000);
        // IP: -(4 - 10 + 18) = -12.
        assert_eq!(
            distance(Metric::Ip, xr, yr),
            Value {
                v: -12 << 55,
                e: 55
            }
        );
        // Cosine: 1 - 12 / sqrt(14 * 77) = 0.634513057676..., correctly rounded to binary32:
        // 0x3f226f73.
        let c = distance(Metric::Cosine, xr, yr);
        assert_eq!(c.to_f32_bits(), 0x3f22_6f73);
        // Self-distance is zero for L2 and cosine.
        assert_eq!(distance(Metric::L2, xr, xr).v, 0);
        assert!(distance(Metric::Cosine, xr, xr).v.abs() < 1 << 20);
        // L2 across scales: (1.0) vs (0.25) with scales 29 and 32: 0.75^2 = 0.5625.
        let a = [1 << 29];
        let b = [1 << 30];
        let d = distance(
            Metric::L2,
            VecRef {
                m: &a,
                scale: 29,
                norm: 0,
            },
            VecRef {
                m: &b,
                scale: 32,
                norm: 0,
            },
        );
        assert_eq!(d.to_f32_bits(), 0x3f10_0000);
        // Zero vector under cosine: distance 1.
        let mut z = [7i32; 3];
        assert_eq!(Fixed::from_i8([0i8, 0, 0].into_iter(), &mut z), 0);
        assert_eq!(z, [0; 3]);
        let zr = VecRef {
            m: &z,
            scale: 0,
            norm: 0,
        };
        assert_eq!(distance(Metric::Cosine, zr, xr).to_f32_bits(), 0x3f80_0000);
    }
}
