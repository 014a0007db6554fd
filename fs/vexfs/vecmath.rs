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
//! The index keeps this exact representation of every vector for the final ranking (4 bytes
//! per element, as much as the binary32 input). Under the cosine metric it keeps the unit
//! vector instead ([`normalize`]: scale [`UNIT_BITS`], each element within `2^-30` of
//! `x[i] / ||x||`), and a compact copy for the graph traversal ([`encode`]: codes of at most
//! [`CODE_MAX`] and a factor, eight codes to a word, [`dot_words`]), whose distances order the
//! traversal and are then replaced by exact ones for the candidates found.
//!
//! # Distances
//!
//! Computed exactly on the mantissas, in `i64` products and `i128` sums (`dim <= 4096`):
//!
//! - L2 (squared): both vectors are brought to the coarser of their two grids (the finer one
//!   rounded once more, error `delta' = max(delta_x, delta_y)`), then `sum (a - b)^2`, exact:
//!   `|a - b| <= 2^31`, a square is below `2^62`.
//! - Inner product (negated): `-sum m_x * m_y * 2^-(s_x + s_y)`, exact.
//! - Cosine: `1 - sum u_x u_y * 2^-60` on the unit vectors, kept in `[0, 2]`. A zero vector
//!   stays zero and has distance 1 to everything.
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
//!   of the vectors), `|d - d_ref| <= 2 (r_x + r_y) + 2 sqrt(n) 2^-30 + 2^-24 |d_ref|` to
//!   first order, the middle term being the rounding of the two unit vectors (`sqrt(n) 2^-30`
//!   each in Euclidean norm);
//!
//! the last term being the final rounding to binary32. In practice (`max|x| ~ 3 ||x||_2 /
//! sqrt(n)`) this is a few units in the 7th significant digit or better: results agree with
//! binary64 brute force except for near-ties. For `i8` collections the L2 and inner product
//! distances are exact before the final rounding, and the cosine within `2 sqrt(n) 2^-30`.

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

/// [`shift_round`] of a binary32 significand (`v < 2^24`) whose result is at most `2^30`
/// (the caller's scale guarantees it), in 64-bit arithmetic and without branches on the data:
/// a right shift by `r` rounds half to even as `(v + 2^(r-1) - 1 + bit r of v) >> r`.
#[inline]
fn shift_round_small(v: u32, sh: i32) -> u64 {
    // Without a branch on the sign of `sh` (data-dependent, so often mispredicted): `v`
    // is moved up by 31 bits (below 2^55) and then down by `r = 31 - sh`, which is at least
    // 1 as `v * 2^sh <= 2^30`. For `sh >= 0` the bits shifted out are zero and the rounding
    // adds less than one unit; from `r = 56` on the result is 0 (below one half), and 63
    // keeps the sum below 2^63.
    let x = u64::from(v) << 31;
    let r = (31 - i64::from(sh)).clamp(1, 63) as u32;
    (x + (1 << (r - 1)) - 1 + ((x >> r) & 1)) >> r
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
        // The bit patterns of binary32 magnitudes order like the magnitudes, NaN and the
        // infinities above all finite ones: the largest pattern is the largest element, or
        // shows that there is a NaN or an infinity.
        let max = bits.clone().fold(0, |a, b| a.max(b & 0x7fff_ffff));
        let d = decode_f32(max)?;
        if d.mant == 0 {
            out.iter_mut().for_each(|o| *o = 0);
            return Ok(0);
        }
        // Position just above the most significant bit of the largest element.
        let top = d.exp + bitlen(u128::from(d.mant));
        let scale = MANT_BITS - top;
        for (b, o) in bits.zip(out.iter_mut()) {
            // Finite (checked above): the decoding cannot fail.
            let e = ((b >> 23) & 0xff) as i32;
            let f = b & 0x7f_ffff;
            let (mant, exp) = if e == 0 {
                (f, -149)
            } else {
                (f | 0x80_0000, e - 150)
            };
            let m = shift_round_small(mant, exp + scale) as i32;
            // -m where the sign bit is set, without a branch.
            let neg = (b as i32) >> 31;
            *o = (m ^ neg) - neg;
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

/// Integer square root of `v` (floor): Newton's method from above with [`div_128_64`], or
/// digit by digit for `v >= 2^126` (no 128-bit division in the kernel either way).
pub(crate) fn isqrt(v: u128) -> u128 {
    if v < 2 {
        return v;
    }
    if v >= 1 << 126 {
        return isqrt_digits(v);
    }
    // x >= sqrt(v), x <= 2^63; v / x <= sqrt(v) < 2^63, so neither the quotient nor the sum
    // overflows, and the iteration decreases to floor(sqrt(v)).
    let mut x = 1u64 << ((bitlen(v) + 1) / 2);
    loop {
        let y = (x + div_128_64(v, x)) / 2;
        if y >= x {
            return u128::from(x);
        }
        x = y;
    }
}

/// Integer square root of `v` (floor), digit by digit.
fn isqrt_digits(v: u128) -> u128 {
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

/// `floor(n / d)` for `d != 0` and a quotient below `2^64` (`n < d * 2^64`; `u64::MAX`
/// otherwise), with 64-bit divisions only: Knuth's algorithm D with 32-bit digits (the
/// kernel has no 128-bit division).
pub(crate) fn div_128_64(n: u128, d: u64) -> u64 {
    const B: u64 = 1 << 32;
    let (mut u1, mut u0) = ((n >> 64) as u64, n as u64);
    if d == 0 || u1 >= d {
        return u64::MAX;
    }
    // Normalise: the divisor's top bit set (u1 < d keeps u1 << s below 2^64).
    let s = d.leading_zeros();
    let v = d << s;
    if s > 0 {
        u1 = (u1 << s) | (u0 >> (64 - s));
        u0 <<= s;
    }
    let (vn1, vn0) = (v >> 32, v & (B - 1));
    let (un1, un0) = (u0 >> 32, u0 & (B - 1));
    // First digit: q1 <= u1 / vn1 < 2^33, corrected down at most twice; q1 * vn0 is only
    // taken when q1 < 2^32, and rhat < 2^32 whenever it is shifted.
    let mut q1 = u1 / vn1;
    let mut rhat = u1 - q1 * vn1;
    while q1 >= B || q1 * vn0 > (rhat << 32) + un1 {
        q1 -= 1;
        rhat += vn1;
        if rhat >= B {
            break;
        }
    }
    // The partial remainder is below v: computed modulo 2^64.
    let un21 = (u1 << 32)
        .wrapping_add(un1)
        .wrapping_sub(q1.wrapping_mul(v));
    let mut q0 = un21 / vn1;
    let mut rhat = un21 - q0 * vn1;
    while q0 >= B || q0 * vn0 > (rhat << 32) + un0 {
        q0 -= 1;
        rhat += vn1;
        if rhat >= B {
            break;
        }
    }
    (q1 << 32) + q0
}

/// `n / d` (floor) by binary long division: the kernel has no 128-bit division. `d != 0`.
pub(crate) fn div_u128(n: u128, d: u128) -> u128 {
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

/// Scale of a unit vector made by [`normalize`]: `u[i] = x[i] / ||x|| * 2^UNIT_BITS`.
pub(crate) const UNIT_BITS: i32 = 30;

/// Turns mantissas `m` (at any scale) into the unit vector in the same direction, in place:
/// `m[i] = round(m[i] * 2^30 / ||m||)`, off by at most one unit (`2^-30`) per element. A zero
/// vector stays zero. Integer only: `||m||` is an integer square root and the division is a
/// multiplication by a 57-bit reciprocal (one long division per vector, none per element).
pub(crate) fn normalize(m: &mut [i32]) {
    apply_unit(m, unit_factor(m));
}

/// The reciprocal [`normalize`] multiplies `m` by: a 57-bit `inv` and a shift, packed as
/// `inv << 6 | shift` (0 for a zero vector). An index keeps it per vector, so that it can
/// turn the vector, read again from its record, into the same unit vector without the square
/// root and the division ([`apply_unit`]).
pub(crate) fn unit_factor(m: &[i32]) -> u64 {
    let mut sum: u128 = 0;
    for &x in m.iter() {
        let x = i64::from(x);
        sum += (x * x) as u128;
    }
    if sum == 0 {
        return 0;
    }
    // r ~= ||m|| * 2^20, in [2^20, 2^56] for at most 4096 30-bit mantissas.
    let r = isqrt(sum << 40);
    let l = bitlen(r);
    // inv = floor(2^(56 + l) / r), in [2^56, 2^57]: six bits fewer than the quotient could
    // carry, so that it packs with the shift into one word; the rounding below is unchanged
    // in kind (truncated reciprocal, rounded product).
    let inv = div_128_64(1u128 << (56 + l), r as u64);
    // m * 2^30 / ||m|| = m * 2^50 / r = m * inv * 2^(50 - 56 - l).
    let sh = (6 + l) as u32;
    // inv <= 2^57 and sh <= 63: the packed word fits.
    (inv << 6) | u64::from(sh)
}

/// Multiplies `m` by a factor of [`unit_factor`] (of these mantissas): the unit vector of
/// [`normalize`].
#[inline]
pub(crate) fn apply_unit(m: &mut [i32], f: u64) {
    if f == 0 {
        return;
    }
    let (inv, sh) = (u128::from(f >> 6), (f & 0x3f) as u32);
    for x in m.iter_mut() {
        let p = u128::from(x.unsigned_abs()) * inv;
        let v = ((p + (1u128 << (sh - 1))) >> sh).min(1 << UNIT_BITS) as i32;
        let neg = *x >> 31;
        *x = (v ^ neg) - neg;
    }
}

/// Fixed-point exponent of the factor of a compact code: a vector is approximated by
/// `codes[i] * factor * 2^-CODE_BITS`.
pub(crate) const CODE_BITS: i32 = 38;

/// Largest magnitude of a compact code. With `|c| <= 90`, four products add up to less than
/// `2^15` in magnitude, which [`dot_words`] needs.
pub(crate) const CODE_MAX: u32 = 90;

/// Codes a word of a compact copy holds ([`pack`]).
pub(crate) const CODES_PER_WORD: usize = 8;

/// Words of the query form ([`query_form`]) per word of a compact copy.
pub(crate) const QUERY_WORDS: usize = 4;

/// The lanes [`dot_words`] takes out of a word of codes: every other byte.
const LANES: u64 = 0x00ff_00ff_00ff_00ff;

/// What the bias of the codes adds to the lanes of [`LANES`]: 128 in each.
const LANE_BIAS: u64 = 0x0080_0080_0080_0080;

/// Packs eight codes into one word, byte `i` holding `c[i] + 128` (so that a compact copy
/// reads half as many cache lines as 16-bit lanes would; [`dot_words`] widens them).
pub(crate) fn pack(c: [i64; CODES_PER_WORD]) -> u64 {
    c.iter().rev().fold(0u64, |w, &x| {
        (w << 8) | u64::from(x.wrapping_add(128) as u8)
    })
}

/// The eight codes of a word made by [`pack`].
pub(crate) fn unpack(w: u64) -> [i64; CODES_PER_WORD] {
    let mut c = [0i64; CODES_PER_WORD];
    for (i, x) in c.iter_mut().enumerate() {
        *x = i64::from((w >> (8 * i)) as u8) - 128;
    }
    c
}

/// Packs four codes into 16-bit lanes, as the integer `c[0] + c[1] 2^16 + c[2] 2^32 + c[3]
/// 2^48` (mod 2^64; negative codes borrow from the next lane).
fn pack_lanes(c: [i64; 4]) -> u64 {
    c[0].wrapping_add(c[1] << 16)
        .wrapping_add(c[2] << 32)
        .wrapping_add(c[3] << 48) as u64
}

/// The compact (traversal) copy of a unit vector `u` ([`normalize`]): codes
/// `c[i] = round(CODE_MAX * u[i] / max |u|)` and a factor, `u[i] * 2^-30 ~= c[i] * factor *
/// 2^-38`, packed eight to a word ([`pack`]) into `words` (`ceil(dim / 8)` long; missing codes
/// are zero). Returns `(factor, err2)`: `err2` is the squared Euclidean norm of the
/// approximation error in units of 2^-76, `||u * 2^-30 - c * factor * 2^-38||_2^2 = err2 *
/// 2^-76`, computed exactly from the codes ([`err_bound`] turns it into a bound on the norm).
pub(crate) fn encode(u: &[i32], words: &mut [u64]) -> (u32, u128) {
    let zero = pack([0; CODES_PER_WORD]);
    words.iter_mut().for_each(|w| *w = zero);
    let umax = u.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
    if umax == 0 {
        return (0, 0);
    }
    let umax = u64::from(umax);
    let cmax = u64::from(CODE_MAX);
    // factor = round(umax * 2^(38 - 30) / CODE_MAX) < 2^32 (umax <= 2^30).
    let factor = ((umax << (CODE_BITS - UNIT_BITS)) + cmax / 2) / cmax;
    // 1 / umax as a 62-bit fixed-point reciprocal (umax >= 2^24 for a unit vector).
    let rinv = (1u64 << 62) / umax;
    // CODE_MAX / umax in units of 2^-62: below 2^45 for a unit vector, so one 64-bit
    // multiplication per element (saturated for other input, which is not encoded).
    let k = cmax.saturating_mul(rinv);
    let mut err2: u128 = 0;
    for (chunk, w) in u.chunks(CODES_PER_WORD).zip(words.iter_mut()) {
        let mut c = [0i64; CODES_PER_WORD];
        for (x, c) in chunk.iter().zip(c.iter_mut()) {
            let p = u128::from(x.unsigned_abs()) * u128::from(k);
            let q = ((p + (1u128 << 61)) >> 62).min(u128::from(cmax)) as i64;
            // -q for a negative element, without a branch.
            let neg = i64::from(*x >> 31);
            *c = (q ^ neg) - neg;
            // Exact error of this element in units of 2^-38: below 2^31 in magnitude.
            let d = (i64::from(*x) << (CODE_BITS - UNIT_BITS)) - *c * factor as i64;
            err2 += (d * d) as u128;
        }
        *w = pack(c);
    }
    (factor as u32, err2)
}

/// An upper bound, in units of 2^-38, of the error norm whose square [`encode`] returned.
pub(crate) fn err_bound(err2: u128) -> u64 {
    isqrt(err2) as u64 + 1
}

/// Turns the words of [`encode`] into the query form of [`dot_words`], [`QUERY_WORDS`]
/// words for each (`out` is that much longer than `words`): the even codes of the word in
/// 16-bit lanes in reverse order with the constant their bias calls for, then the odd
/// codes likewise.
pub(crate) fn query_form(words: &[u64], out: &mut [u64]) {
    for (w, o) in words.iter().zip(out.chunks_exact_mut(QUERY_WORDS)) {
        let c = unpack(*w);
        let even = pack_lanes([c[6], c[4], c[2], c[0]]);
        let odd = pack_lanes([c[7], c[5], c[3], c[1]]);
        o[0] = even;
        o[1] = (1u64 << 47).wrapping_sub(LANE_BIAS.wrapping_mul(even));
        o[2] = odd;
        o[3] = (1u64 << 47).wrapping_sub(LANE_BIAS.wrapping_mul(odd));
    }
}

/// The dot product of the codes of `data` ([`encode`]) and `query` ([`query_form`] of
/// codes as long): eight products per two 64-bit multiplications.
///
/// The even bytes of a data word, `w & LANES`, are the biased codes `a[i] + 128` in 16-bit
/// lanes; minus [`LANE_BIAS`] they are `A = sum a[i] z^i` (`z = 2^16`, mod 2^64). With `B =
/// sum b[3 - i] z^i`, the product `A B` has `sum a[i] b[i]` as the coefficient of `z^3`, and
/// `A B = (w & LANES) B - LANE_BIAS B` mod 2^64: the query form holds `B` and `2^47 -
/// LANE_BIAS B`. The coefficients below `z^3` add up to `L` with `|L| < 2^47` (each is a sum
/// of at most three products of magnitude `<= 90^2`), so adding `2^47` and shifting right by
/// 48 (arithmetic, on the product mod 2^64) leaves exactly that coefficient, which is below
/// `2^15` in magnitude (four products). The odd bytes, `(w >> 8) & LANES`, likewise.
#[inline]
pub(crate) fn dot_words(data: &[u64], query: &[u64]) -> i32 {
    // At most 512 words, 1024 coefficients of at most 4 * 90^2 each: every sum stays below
    // 2^25, so the wrapping additions never wrap.
    #[inline(always)]
    fn lanes(w: u64, q: &[u64], acc: &mut [i32]) {
        let e = (w & LANES).wrapping_mul(q[0]).wrapping_add(q[1]);
        let o = ((w >> 8) & LANES).wrapping_mul(q[2]).wrapping_add(q[3]);
        acc[0] = acc[0].wrapping_add(((e as i64) >> 48) as i32);
        acc[1] = acc[1].wrapping_add(((o as i64) >> 48) as i32);
    }
    let mut acc = [0i32; 4];
    let (cd, cq) = (data.chunks_exact(2), query.chunks_exact(2 * QUERY_WORDS));
    let (rd, rq) = (cd.remainder(), cq.remainder());
    for (w, q) in cd.zip(cq) {
        let (q0, q1) = q.split_at(QUERY_WORDS);
        lanes(w[0], q0, &mut acc[..2]);
        lanes(w[1], q1, &mut acc[2..]);
    }
    if let (Some(&w), Some(q)) = (rd.first(), rq.get(..QUERY_WORDS)) {
        lanes(w, q, &mut acc[..2]);
    }
    acc[0]
        .wrapping_add(acc[1])
        .wrapping_add(acc[2])
        .wrapping_add(acc[3])
}

/// Elements of one block of [`rotate`]'s transform for vectors of `dim` elements: the
/// largest power of two dividing `dim`, at most 256.
pub(crate) fn rotate_block(dim: usize) -> usize {
    1usize << dim.trailing_zeros().min(8)
}

/// A fixed pseudo-random rotation (up to a scale) of `x`, in place: each element's sign is
/// flipped by a fixed pattern, then a Walsh-Hadamard transform mixes each block of
/// [`rotate_block`] elements. It spreads a vector's energy over its elements, so that the
/// signs of the elements ([`sign_code`]) say about as much about every vector, whatever
/// directions the data favour. Integer additions only; the elements grow by at most the
/// block length (256), so `|x[i]| <= 2^31` stays below `2^39`.
pub(crate) fn rotate(x: &mut [i64]) {
    for (i, v) in x.iter_mut().enumerate() {
        // All ones where the pattern flips the sign (a branch here would be mispredicted
        // half the time).
        let flip = ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as i64) >> 63;
        *v = (*v ^ flip) - flip;
    }
    let b = rotate_block(x.len());
    for block in x.chunks_exact_mut(b) {
        let mut h = 1;
        while h < b {
            for pair in block.chunks_exact_mut(2 * h) {
                let (lo, hi) = pair.split_at_mut(h);
                // Below 2^39 in magnitude (see above): the wrapping operations never wrap,
                // and spare the overflow checks of the kernel's build.
                for (a, c) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (p, q) = (*a, *c);
                    *a = p.wrapping_add(q);
                    *c = p.wrapping_sub(q);
                }
            }
            h *= 2;
        }
    }
}

/// The sign code of a vector whose rotation ([`rotate`]) is `x`: bit `i % 64` of word
/// `i / 64` of `bits` is set where `x[i] >= 0`. Returns `(||x||_1, set bits)`: the sign
/// vector `s` (`+1` where set, `-1` elsewhere) has `<s, x> = ||x||_1`. `<s, y> / ||x||_1`
/// estimates the cosine of `x` and `y` times `||y||` (RaBitQ, Gao and Long, 2024: the
/// estimate is unbiased for random rotations, with an error of order `1 / sqrt(dim)`).
pub(crate) fn sign_code(x: &[i64], bits: &mut [u64]) -> (u64, u32) {
    bits.iter_mut().for_each(|w| *w = 0);
    let mut l1: u64 = 0;
    let mut set = 0;
    for (chunk, w) in x.chunks(64).zip(bits.iter_mut()) {
        for (i, &v) in chunk.iter().enumerate() {
            l1 = l1.saturating_add(v.unsigned_abs());
            // 1 where `v >= 0`, without a branch.
            let bit = (!v as u64) >> 63;
            *w |= bit << i;
            set += bit as u32;
        }
    }
    (l1, set)
}

/// The query form of a rotated vector `x` for [`sign_dot`]: codes `q[i] = round(7 x[i] /
/// max |x|) + 8` in `1..=15`, as four bit planes per 64 elements (`planes[4 w + b]` holds
/// bit `b` of the codes of elements `64 w..64 w + 64`). Returns the sum of the codes.
pub(crate) fn sign_query(x: &[i64], planes: &mut [u64]) -> i64 {
    planes.iter_mut().for_each(|w| *w = 0);
    let max = x.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
    let mut sum = 0;
    if max == 0 {
        return 0;
    }
    for (w, chunk) in x.chunks(64).enumerate() {
        for (i, &v) in chunk.iter().enumerate() {
            // |v| <= max < 2^40 (see `rotate`): the sums fit.
            let r = ((v.unsigned_abs() * 14 + max) / (2 * max)) as i64;
            let c = if v < 0 { 8 - r } else { 8 + r };
            sum += c;
            for b in 0..4 {
                if c >> b & 1 != 0 {
                    if let Some(p) = planes.get_mut(4 * w + b) {
                        *p |= 1 << i;
                    }
                }
            }
        }
    }
    sum
}

/// `sum_i bit_i(bits) q[i]` for the sign code `bits` ([`sign_code`]) and the query codes
/// `q` in `planes` ([`sign_query`]): four masked bit counts per 64 elements.
#[inline]
pub(crate) fn sign_dot(bits: &[u64], planes: &[u64]) -> i64 {
    let mut sum = 0u32;
    for (b, p) in bits.iter().zip(planes.chunks_exact(4)) {
        sum += (b & p[0]).count_ones()
            + ((b & p[1]).count_ones() << 1)
            + ((b & p[2]).count_ones() << 2)
            + ((b & p[3]).count_ones() << 3);
    }
    i64::from(sum)
}

/// A vector borrowed for an exact distance computation.
#[derive(Clone, Copy)]
pub(crate) struct VecRef<'a> {
    /// Mantissas (for cosine: the unit vector of [`normalize`]).
    pub(crate) m: &'a [i32],
    /// Scale: `x = m * 2^-scale` (for cosine: [`UNIT_BITS`]).
    pub(crate) scale: i32,
}

/// `m * 2^-shift` rounded to nearest, ties to even, for `shift >= 0`.
#[inline]
fn align(m: i32, shift: i32) -> i64 {
    let m = i64::from(m);
    match shift {
        0 => m,
        // |m| <= 2^30 < 2^(shift - 1): rounds to zero (a tie only at exactly half, which
        // needs shift == 31 and |m| == 2^30, and rounds to the even zero too).
        31.. => 0,
        _ => {
            let q = m >> shift;
            let rem = m - (q << shift);
            let half = 1i64 << (shift - 1);
            if rem > half || (rem == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        }
    }
}

/// The exact distance between `a` and `b` (of the same length) under `metric`.
pub(crate) fn distance(metric: Metric, a: VecRef<'_>, b: VecRef<'_>) -> Value {
    match metric {
        Metric::L2 => {
            // Coarser grid: the smaller scale.
            let s = a.scale.min(b.scale);
            let (sa, sb) = (a.scale - s, b.scale - s);
            let mut sum: u128 = 0;
            if sa == 0 && sb == 0 {
                for (&x, &y) in a.m.iter().zip(b.m.iter()) {
                    let d = i64::from(x) - i64::from(y);
                    sum += (d * d) as u128;
                }
            } else {
                for (&x, &y) in a.m.iter().zip(b.m.iter()) {
                    let d = align(x, sa) - align(y, sb);
                    sum += (d * d) as u128;
                }
            }
            Value {
                v: sum as i128,
                e: 2 * s,
            }
        }
        Metric::Ip => Value {
            v: -dot(a.m, b.m),
            e: a.scale + b.scale,
        },
        Metric::Cosine => {
            // Unit vectors: cos * 2^60 is their dot product. Rounding can take it a little
            // past one; the distance is kept in [0, 2].
            const ONE: i128 = 1 << (2 * UNIT_BITS);
            Value {
                v: (ONE - dot(a.m, b.m)).clamp(0, 2 * ONE),
                e: 2 * UNIT_BITS,
            }
        }
    }
}

/// Exact dot product of two mantissa vectors.
#[inline]
fn dot(a: &[i32], b: &[i32]) -> i128 {
    let mut sum: i128 = 0;
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        // Each product is below 2^60 in magnitude, so four add up in an i64.
        let p = i64::from(x[0]) * i64::from(y[0])
            + i64::from(x[1]) * i64::from(y[1])
            + i64::from(x[2]) * i64::from(y[2])
            + i64::from(x[3]) * i64::from(y[3]);
        sum += i128::from(p);
    }
    for (&x, &y) in ra.iter().zip(rb) {
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
        // NaN and infinities anywhere, of either sign, are refused.
        assert_eq!(conv(&[0, 0x7fc0_0000, 0, 0], &mut out), Err(EINVAL));
        assert_eq!(
            conv(&[0x3f80_0000, 0xff80_0000], &mut out[..2]),
            Err(EINVAL)
        );
        assert_eq!(
            conv(&[0x8000_0001, 0xffc0_0001], &mut out[..2]),
            Err(EINVAL)
        );
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
        // The significand version agrees, ties and the largest shifts included.
        for v in [
            0u32, 1, 2, 3, 5, 7, 0x80_0000, 0x80_0001, 0xc0_0000, 0xff_ffff, 0x12_3456,
        ] {
            for sh in -60..=6 {
                assert_eq!(
                    u128::from(shift_round_small(v, sh)),
                    shift_round(u128::from(v), sh)
                );
            }
        }
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
        // Newton and digit by digit agree; the short division matches the long one.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = (u128::from(x) << (i % 64)) ^ u128::from(x.rotate_left(i));
            assert_eq!(isqrt(v), isqrt_digits(v));
            let d = (x >> (i % 63)) | 1;
            let n = (u128::from(((v >> 64) as u64) % d) << 64) | u128::from(v as u64);
            assert_eq!(u128::from(div_128_64(n, d)), div_u128(n, u128::from(d)));
        }
        assert_eq!(div_128_64(u128::MAX >> 1, 1 << 63), u64::MAX);
        assert_eq!(div_128_64(1 << 64, 1), u64::MAX);
        assert_eq!(div_128_64(5, 0), u64::MAX);
    }

    #[test]
    fn distances() {
        // x = (1, 2, 3), y = (4, -5, 6) as i8: scales 28 and 27.
        let (mut x, mut y) = ([0i32; 3], [0i32; 3]);
        let sx = Fixed::from_i8([1i8, 2, 3].into_iter(), &mut x);
        let sy = Fixed::from_i8([4i8, -5, 6].into_iter(), &mut y);
        assert_eq!((sx, sy), (28, 27));
        assert_eq!(x, [1 << 28, 2 << 28, 3 << 28]);
        let xr = VecRef { m: &x, scale: sx };
        let yr = VecRef { m: &y, scale: sy };
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
        // Cosine on the unit vectors: 1 - 12 / sqrt(14 * 77) = 0.634513057676...,
        // correctly rounded to binary32: 0x3f226f73.
        let (mut ux, mut uy) = (x, y);
        normalize(&mut ux);
        normalize(&mut uy);
        let ur = |m| VecRef {
            m,
            scale: UNIT_BITS,
        };
        let c = distance(Metric::Cosine, ur(&ux), ur(&uy));
        assert_eq!(c.to_f32_bits(), 0x3f22_6f73);
        // Self-distance is zero for L2 and (within rounding) cosine.
        assert_eq!(distance(Metric::L2, xr, xr).v, 0);
        assert!(distance(Metric::Cosine, ur(&ux), ur(&ux)).v < 1 << 36);
        // L2 across scales: (1.0) vs (0.25) with scales 29 and 32: 0.75^2 = 0.5625.
        let a = [1 << 29];
        let b = [1 << 30];
        let d = distance(
            Metric::L2,
            VecRef { m: &a, scale: 29 },
            VecRef { m: &b, scale: 32 },
        );
        assert_eq!(d.to_f32_bits(), 0x3f10_0000);
        // Zero vector under cosine: distance 1.
        let mut z = [7i32; 3];
        assert_eq!(Fixed::from_i8([0i8, 0, 0].into_iter(), &mut z), 0);
        assert_eq!(z, [0; 3]);
        normalize(&mut z);
        assert_eq!(z, [0; 3]);
        assert_eq!(
            distance(Metric::Cosine, ur(&z), ur(&ux)).to_f32_bits(),
            0x3f80_0000
        );
    }

    #[test]
    fn rounding_alignment() {
        // align() rounds half to even, for both signs, like shift_round on magnitudes.
        for m in [
            -9i32,
            -7,
            -6,
            -5,
            -3,
            -2,
            -1,
            0,
            1,
            2,
            3,
            5,
            6,
            7,
            9,
            1 << 29,
            -(1 << 30),
        ] {
            for sh in 0..40 {
                let want = shift_round(u128::from(m.unsigned_abs()), -sh) as i64;
                let want = if m < 0 { -want } else { want };
                assert_eq!(align(m, sh), want);
            }
        }
    }

    #[test]
    fn unit_vectors() {
        // Each element within one unit of m / ||m|| * 2^30, checked with exact integers:
        // (u -+ 1)^2 * ||m||^2 brackets m^2 * 2^60.
        let cases: [&[i32]; 4] = [
            &[1 << 29, 0, 0, 0],
            &[3, 4, 0, 0],
            &[(1 << 30) - 1, -(1 << 30) + 1, 12345, -7],
            &[1 << 29, 1 << 29, 1 << 29, 1 << 29],
        ];
        for m in cases {
            let mut u = [0i32; 4];
            u.copy_from_slice(m);
            normalize(&mut u);
            let n2: u128 = m
                .iter()
                .map(|&x| (i64::from(x) * i64::from(x)) as u128)
                .sum();
            for (&x, &v) in m.iter().zip(u.iter()) {
                assert_eq!(x.signum(), v.signum());
                let t = (i64::from(x) * i64::from(x)) as u128;
                let lo = u128::from(v.unsigned_abs().saturating_sub(1));
                let hi = u128::from(v.unsigned_abs()) + 1;
                assert!(lo * lo * n2 <= t << 60 && t << 60 <= hi * hi * n2);
            }
        }
        assert_eq!(
            {
                let mut u = [3, 4];
                normalize(&mut u);
                u
            },
            [644245094, 858993459]
        );
    }

    #[test]
    fn compact_codes() {
        // The error bound returned by encode() holds, computed independently in i128.
        let mut u = [0i32; 13];
        for (i, x) in u.iter_mut().enumerate() {
            *x = ((i as i32 * 7919) % 2001 - 1000) << 16;
        }
        normalize(&mut u);
        let mut words = [0u64; 2];
        let (f, err2) = encode(&u, &mut words);
        let err = i128::from(err_bound(err2));
        let mut codes = [0i64; 16];
        for (w, c) in words.iter().zip(codes.chunks_exact_mut(8)) {
            c.copy_from_slice(&unpack(*w));
        }
        assert!(codes[13..].iter().all(|&c| c == 0));
        assert_eq!(codes.iter().map(|c| c.unsigned_abs()).max(), Some(90));
        let e2: i128 = u
            .iter()
            .zip(codes.iter())
            .map(|(&x, &c)| {
                let d = (i128::from(x) << 8) - i128::from(c) * i128::from(f);
                d * d
            })
            .sum();
        assert_eq!(e2 as u128, err2);
        assert!(e2 <= err * err && e2 > (err - 2) * (err - 2));
        // Dot products of codes are exact, at the extremes too.
        let b = [1i64, -2, 3, -4, 5, -6, 7, -8, 90, -90, 0, 1, 2, 3, 4, 5];
        let mut bw = [0u64; 2];
        for (w, c) in bw.iter_mut().zip(b.chunks_exact(8)) {
            *w = pack([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        }
        let mut bq = [0u64; 2 * QUERY_WORDS];
        query_form(&bw, &mut bq);
        let want: i64 = codes.iter().zip(b.iter()).map(|(&x, &y)| x * y).sum();
        assert_eq!(i64::from(dot_words(&words, &bq)), want);
        for (x, y) in [(90i64, 90i64), (-90, 90), (90, -90), (-90, -90), (0, -90)] {
            let a = [pack([x, x, x, x, -x, x, x, x]); 3];
            let mut q = [0u64; 3 * QUERY_WORDS];
            query_form(&[pack([y, -y, y, y, -y, y, y, y]); 3], &mut q);
            assert_eq!(i64::from(dot_words(&a, &q)), 3 * (x * y * 6));
            let c = [x, -y, y, x, 0, -x, y, -90];
            assert_eq!(unpack(pack(c)), c);
        }
        let z = [0i32; 5];
        let mut zw = [1u64; 2];
        assert_eq!(encode(&z, &mut zw), (0, 0));
        assert_eq!(zw, [pack([0; 8]); 2]);
    }

    #[test]
    fn sign_codes() -> Result {
        // The rotation is orthogonal up to the block length: inner products scale by it. The
        // vectors are on the heap: five of them would take most of a kernel stack.
        let mut rng = 0x1234_5678u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % 2001) as i64 - 1000
        };
        let vector = || -> Result<KVec<i64>> {
            let mut v = KVec::with_capacity(384, GFP_KERNEL)?;
            v.resize(384, 0, GFP_KERNEL)?;
            Ok(v)
        };
        let (mut x, mut y) = (vector()?, vector()?);
        x.iter_mut().for_each(|v| *v = next());
        y.iter_mut().for_each(|v| *v = next());
        assert_eq!(rotate_block(384), 128);
        assert_eq!(rotate_block(768), 256);
        assert_eq!(rotate_block(300), 4);
        let dot = |a: &[i64], b: &[i64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<i64>();
        let (xy, xx) = (dot(&x, &y), dot(&x, &x));
        let (mut rx, mut ry) = (vector()?, vector()?);
        rx.copy_from_slice(&x);
        ry.copy_from_slice(&y);
        rotate(&mut rx);
        rotate(&mut ry);
        assert_eq!(dot(&rx, &ry), 128 * xy);
        assert_eq!(dot(&rx, &rx), 128 * xx);

        // The sign code, the query planes and their product against a direct computation.
        let mut bits = [0u64; 6];
        let (l1, set) = sign_code(&rx, &mut bits);
        assert_eq!(l1, rx.iter().map(|v| v.unsigned_abs()).sum::<u64>());
        assert_eq!(set as usize, rx.iter().filter(|&&v| v >= 0).count());
        let mut planes = [0u64; 24];
        let sum = sign_query(&ry, &mut planes);
        let max = ry.iter().map(|v| v.unsigned_abs()).max().unwrap_or(1) as i64;
        let mut want_sum = 0;
        let mut want_dot = 0;
        for (i, &v) in ry.iter().enumerate() {
            let c = planes_code(&planes, i);
            // Within half a step of 7 v / max, plus 8.
            assert!((2 * (7 * v - (c - 8) * max)).abs() <= max);
            want_sum += c;
            if rx[i] >= 0 {
                want_dot += c;
            }
        }
        assert_eq!(sum, want_sum);
        assert_eq!(sign_dot(&bits, &planes), want_dot);

        // The estimate `n max |x| / (7 ||x||_1 |y|)` of the cosine, within 0.2 of it, and near
        // one for a vector against itself: `|est - cos| * 7 l1 |x| |y| = |n max |x|^2 - 7 l1
        // <x, y>|` in integers (of the rotated vectors: their scale cancels).
        let close = |b: &[u64], l1: u64, set: u32, a: &[i64], c: &[i64], tenths: i128| {
            let mut planes = [0u64; 24];
            let sum = sign_query(c, &mut planes);
            let n = 2 * sign_dot(b, &planes) - sum - 16 * i64::from(set) + 8 * 384;
            let max = c.iter().map(|v| v.unsigned_abs()).max().unwrap_or(1);
            let na = isqrt(dot(a, a) as u128) as i128;
            let nc = isqrt(dot(c, c) as u128) as i128;
            let lhs = i128::from(n) * i128::from(max) * na * na
                - 7 * i128::from(l1) * i128::from(dot(a, c));
            10 * lhs.abs() < tenths * 7 * i128::from(l1) * na * nc
        };
        assert!(close(&bits, l1, set, &rx, &ry, 2));
        assert!(close(&bits, l1, set, &rx, &rx, 2));
        // Nearly the same vector: still near one.
        let mut near = vector()?;
        near.copy_from_slice(&rx);
        near.iter_mut().step_by(5).for_each(|v| *v /= 2);
        assert!(close(&bits, l1, set, &rx, &near, 2));
        Ok(())
    }

    /// The query code of element `i` in `planes` ([`sign_query`]).
    fn planes_code(planes: &[u64], i: usize) -> i64 {
        (0..4)
            .map(|b| ((planes[4 * (i / 64) + b] >> (i % 64)) & 1) as i64 * (1 << b))
            .sum()
    }
}
