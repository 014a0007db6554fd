// SPDX-License-Identifier: GPL-2.0

//! Vector files: NumPy `.npy` and the `.fvecs`/`.bvecs`/`.ivecs` formats of
//! the classic ANN benchmark data sets.
//!
//! - `.npy` (format versions 1, 2 and 3): a magic string, a version, a header
//!   length (16 bits in version 1, 32 bits after) and a Python dictionary
//!   literal giving `descr`, `fortran_order` and `shape`, then the raw data.
//!   Supported: little-endian `<f4`, `<f8` (converted to binary32), `|i1`,
//!   `|u1`, `<i4`, `<i8`; C or Fortran order; one or two dimensions (a
//!   1-D array is one vector).
//! - `.fvecs`, `.bvecs`, `.ivecs`: one record per vector, a little-endian
//!   32-bit element count followed by that many binary32, unsigned byte or
//!   32-bit integer elements. Every record must have the same count.

use std::path::Path;

/// Elements of a [`Matrix`], in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub enum Elems {
    /// Binary32 floats (also `<f8` files, converted).
    F32(Vec<f32>),
    /// Signed bytes.
    I8(Vec<i8>),
    /// Unsigned bytes (`.bvecs`, `|u1`).
    U8(Vec<u8>),
    /// 32-bit integers (`.ivecs`, `<i4`).
    I32(Vec<i32>),
    /// 64-bit integers (`<i8`).
    I64(Vec<i64>),
}

/// A matrix of `rows` vectors of `dim` elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Number of vectors.
    pub rows: usize,
    /// Elements per vector.
    pub dim: usize,
    /// `rows * dim` elements.
    pub elems: Elems,
}

/// Loads a vector file, choosing the format by the file name's extension
/// (or the `.npy` magic if the extension is unknown).
pub fn load(path: &Path) -> Result<Matrix, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {}", path.display(), e))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let m = match ext.as_str() {
        "npy" => parse_npy(&data),
        "fvecs" => parse_xvecs(&data, XKind::F),
        "bvecs" => parse_xvecs(&data, XKind::B),
        "ivecs" => parse_xvecs(&data, XKind::I),
        _ if data.starts_with(NPY_MAGIC) => parse_npy(&data),
        _ => Err("unknown file type (expected .npy, .fvecs, .bvecs or .ivecs)".into()),
    };
    m.map_err(|e| format!("{}: {}", path.display(), e))
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Element type of an `.npy` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NpyType {
    F4,
    F8,
    I1,
    U1,
    I4,
    I8,
}

impl NpyType {
    fn parse(descr: &str) -> Result<Self, String> {
        let (order, kind) = descr.split_at(descr.len().min(1));
        let t = match kind {
            "f4" => NpyType::F4,
            "f8" => NpyType::F8,
            "i1" => NpyType::I1,
            "u1" => NpyType::U1,
            "i4" => NpyType::I4,
            "i8" => NpyType::I8,
            _ => return Err(format!("unsupported dtype '{}'", descr)),
        };
        let one_byte = matches!(t, NpyType::I1 | NpyType::U1);
        match order {
            "<" => Ok(t),
            "|" | "=" if one_byte => Ok(t),
            ">" if one_byte => Ok(t),
            ">" => Err(format!("big-endian dtype '{}' is not supported", descr)),
            _ => Err(format!("unsupported dtype '{}'", descr)),
        }
    }

    fn size(self) -> usize {
        match self {
            NpyType::I1 | NpyType::U1 => 1,
            NpyType::F4 | NpyType::I4 => 4,
            NpyType::F8 | NpyType::I8 => 8,
        }
    }
}

/// A value of the header dictionary of an `.npy` file.
#[derive(Debug, PartialEq)]
enum PyValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

/// Parses the Python dictionary literal of an `.npy` header.
fn parse_header_dict(s: &str) -> Result<Vec<(String, PyValue)>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let expect = |i: &mut usize, c: u8| -> Result<(), String> {
        skip_ws(i);
        if *i < b.len() && b[*i] == c {
            *i += 1;
            Ok(())
        } else {
            Err(format!("bad header: expected '{}'", c as char))
        }
    };
    let string = |i: &mut usize| -> Result<String, String> {
        skip_ws(i);
        let q = *b.get(*i).ok_or("bad header: truncated")?;
        if q != b'\'' && q != b'"' {
            return Err("bad header: expected a string".into());
        }
        let start = *i + 1;
        let len = b[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("bad header: unterminated string")?;
        *i = start + len + 1;
        Ok(s[start..start + len].to_string())
    };
    let mut out = Vec::new();
    expect(&mut i, b'{')?;
    loop {
        skip_ws(&mut i);
        if i < b.len() && b[i] == b'}' {
            break;
        }
        let key = string(&mut i)?;
        expect(&mut i, b':')?;
        skip_ws(&mut i);
        let value = match b.get(i) {
            Some(b'\'') | Some(b'"') => PyValue::Str(string(&mut i)?),
            Some(b'(') => {
                i += 1;
                let mut dims = Vec::new();
                loop {
                    skip_ws(&mut i);
                    match b.get(i) {
                        Some(b')') => {
                            i += 1;
                            break;
                        }
                        Some(b',') if !dims.is_empty() => i += 1,
                        Some(c) if c.is_ascii_digit() => {
                            let start = i;
                            while i < b.len() && b[i].is_ascii_digit() {
                                i += 1;
                            }
                            // Python 2 wrote long integers with an `L` suffix.
                            let n = s[start..i]
                                .parse::<u64>()
                                .map_err(|_| "bad header: shape too large")?;
                            if i < b.len() && b[i] == b'L' {
                                i += 1;
                            }
                            dims.push(n);
                        }
                        _ => return Err("bad header: bad shape".into()),
                    }
                }
                PyValue::Tuple(dims)
            }
            _ if s[i..].starts_with("True") => {
                i += 4;
                PyValue::Bool(true)
            }
            _ if s[i..].starts_with("False") => {
                i += 5;
                PyValue::Bool(false)
            }
            _ => return Err(format!("bad header: unsupported value for '{}'", key)),
        };
        out.push((key, value));
        skip_ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return Err("bad header: expected ',' or '}'".into()),
        }
    }
    Ok(out)
}

/// Parses an `.npy` file.
pub fn parse_npy(data: &[u8]) -> Result<Matrix, String> {
    if !data.starts_with(NPY_MAGIC) || data.len() < 10 {
        return Err("not an .npy file".into());
    }
    let major = data[6];
    let (hlen, hstart): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([data[8], data[9]])), 10),
        2 | 3 => {
            let b = data.get(8..12).ok_or("truncated .npy header")?;
            let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (usize::try_from(n).map_err(|_| "bad header length")?, 12)
        }
        v => return Err(format!("unsupported .npy format version {}", v)),
    };
    let hend = hstart.checked_add(hlen).ok_or("bad header length")?;
    let header = data.get(hstart..hend).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "bad .npy header encoding")?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (k, v) in parse_header_dict(header)? {
        match (k.as_str(), v) {
            ("descr", PyValue::Str(s)) => descr = Some(s),
            ("fortran_order", PyValue::Bool(f)) => fortran = Some(f),
            ("shape", PyValue::Tuple(t)) => shape = Some(t),
            (k, _) => return Err(format!("bad header: unexpected key or value '{}'", k)),
        }
    }
    let descr = descr.ok_or("bad header: no descr")?;
    let ty = NpyType::parse(&descr)?;
    let shape = shape.ok_or("bad header: no shape")?;
    let (rows, dim) = match shape[..] {
        [n] => (1, n),
        [r, d] => (r, d),
        _ => {
            return Err(format!(
                "expected a 1-D or 2-D array, got {} dimensions",
                shape.len()
            ))
        }
    };
    let fortran = fortran.ok_or("bad header: no fortran_order")?;
    let rows = usize::try_from(rows).map_err(|_| "array too large")?;
    let dim = usize::try_from(dim).map_err(|_| "array too large")?;
    let n = rows.checked_mul(dim).ok_or("array too large")?;
    let bytes = n.checked_mul(ty.size()).ok_or("array too large")?;
    let body = &data[hend..];
    if body.len() != bytes {
        return Err(format!(
            "data is {} bytes, the header announces {} x {} x {} bytes",
            body.len(),
            rows,
            dim,
            ty.size()
        ));
    }
    let elems = match ty {
        NpyType::F4 => Elems::F32(chunks::<4>(body).map(f32::from_le_bytes).collect()),
        NpyType::F8 => Elems::F32(
            chunks::<8>(body)
                .map(|c| {
                    // A deliberate narrowing: the collections store binary32.
                    #[allow(clippy::cast_possible_truncation)]
                    let v = f64::from_le_bytes(c) as f32;
                    v
                })
                .collect(),
        ),
        NpyType::I1 => Elems::I8(body.iter().map(|&b| i8::from_le_bytes([b])).collect()),
        NpyType::U1 => Elems::U8(body.to_vec()),
        NpyType::I4 => Elems::I32(chunks::<4>(body).map(i32::from_le_bytes).collect()),
        NpyType::I8 => Elems::I64(chunks::<8>(body).map(i64::from_le_bytes).collect()),
    };
    let m = Matrix { rows, dim, elems };
    Ok(if fortran && rows > 1 && dim > 1 {
        m.transposed()
    } else {
        m
    })
}

fn chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// Which of the `*vecs` formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XKind {
    /// `.fvecs`: binary32 elements.
    F,
    /// `.bvecs`: unsigned byte elements.
    B,
    /// `.ivecs`: 32-bit integer elements.
    I,
}

/// Parses an `.fvecs`, `.bvecs` or `.ivecs` file.
pub fn parse_xvecs(data: &[u8], kind: XKind) -> Result<Matrix, String> {
    if data.len() < 4 {
        return Err("empty or truncated file".into());
    }
    let d = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let dim = usize::try_from(d)
        .ok()
        .filter(|&d| d > 0)
        .ok_or_else(|| format!("bad vector dimension {}", d))?;
    let esize = if kind == XKind::B { 1 } else { 4 };
    let rec = dim
        .checked_mul(esize)
        .and_then(|n| n.checked_add(4))
        .ok_or("bad vector dimension")?;
    if data.len() % rec != 0 {
        return Err(format!(
            "size {} is not a multiple of the record size {} (dimension {})",
            data.len(),
            rec,
            dim
        ));
    }
    let rows = data.len() / rec;
    for (i, r) in data.chunks_exact(rec).enumerate() {
        if r[..4] != data[..4] {
            let d = i32::from_le_bytes([r[0], r[1], r[2], r[3]]);
            return Err(format!("vector {} has dimension {}, not {}", i, d, dim));
        }
    }
    let body = || data.chunks_exact(rec).flat_map(|r| r[4..].iter().copied());
    let elems = match kind {
        XKind::B => Elems::U8(body().collect()),
        XKind::F => Elems::F32(
            data.chunks_exact(rec)
                .flat_map(|r| chunks::<4>(&r[4..]))
                .map(f32::from_le_bytes)
                .collect(),
        ),
        XKind::I => Elems::I32(
            data.chunks_exact(rec)
                .flat_map(|r| chunks::<4>(&r[4..]))
                .map(i32::from_le_bytes)
                .collect(),
        ),
    };
    Ok(Matrix { rows, dim, elems })
}

impl Matrix {
    /// A matrix of binary32 vectors.
    pub fn from_f32(dim: usize, v: Vec<f32>) -> Self {
        Matrix {
            rows: v.len().checked_div(dim).unwrap_or(0),
            dim,
            elems: Elems::F32(v),
        }
    }

    /// The matrix read from column-major (Fortran order) data.
    fn transposed(self) -> Self {
        fn t<T: Copy>(v: Vec<T>, rows: usize, dim: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(v.len());
            for r in 0..rows {
                out.extend((0..dim).map(|c| v[c * rows + r]));
            }
            out
        }
        let (rows, dim) = (self.rows, self.dim);
        let elems = match self.elems {
            Elems::F32(v) => Elems::F32(t(v, rows, dim)),
            Elems::I8(v) => Elems::I8(t(v, rows, dim)),
            Elems::U8(v) => Elems::U8(t(v, rows, dim)),
            Elems::I32(v) => Elems::I32(t(v, rows, dim)),
            Elems::I64(v) => Elems::I64(t(v, rows, dim)),
        };
        Matrix { rows, dim, elems }
    }

    /// Name of the element type.
    pub fn type_name(&self) -> &'static str {
        match self.elems {
            Elems::F32(_) => "f32",
            Elems::I8(_) => "i8",
            Elems::U8(_) => "u8",
            Elems::I32(_) => "i32",
            Elems::I64(_) => "i64",
        }
    }

    /// Rows `start..end` as binary32 bit patterns, exactly converted.
    pub fn f32_bits(&self, start: usize, end: usize) -> Result<Vec<u32>, String> {
        let r = start * self.dim..end * self.dim;
        let v: Vec<u32> = match &self.elems {
            Elems::F32(v) => {
                let v = &v[r];
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(format!(
                        "vector {} has a NaN or infinite element",
                        start + i / self.dim
                    ));
                }
                v.iter().map(|x| x.to_bits()).collect()
            }
            Elems::I8(v) => v[r].iter().map(|&x| f32::from(x).to_bits()).collect(),
            Elems::U8(v) => v[r].iter().map(|&x| f32::from(x).to_bits()).collect(),
            Elems::I32(_) | Elems::I64(_) => {
                return Err(format!("{} elements are not vector data", self.type_name()))
            }
        };
        Ok(v)
    }

    /// Rows `start..end` as signed bytes: every element must be an integer in
    /// -128..=127.
    pub fn i8s(&self, start: usize, end: usize) -> Result<Vec<i8>, String> {
        let r = start * self.dim..end * self.dim;
        let bad = |i: usize| {
            format!(
                "vector {} has an element out of the i8 range",
                start + i / self.dim
            )
        };
        match &self.elems {
            Elems::I8(v) => Ok(v[r].to_vec()),
            Elems::U8(v) => v[r]
                .iter()
                .enumerate()
                .map(|(i, &x)| i8::try_from(x).map_err(|_| bad(i)))
                .collect(),
            Elems::F32(v) => v[r]
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    if x.fract() == 0.0 && (-128.0..=127.0).contains(&x) {
                        // Exact: x is an integer in range.
                        #[allow(clippy::cast_possible_truncation)]
                        Ok(x as i8)
                    } else {
                        Err(bad(i))
                    }
                })
                .collect(),
            Elems::I32(_) | Elems::I64(_) => {
                Err(format!("{} elements are not vector data", self.type_name()))
            }
        }
    }

    /// Row `i` as floats (for display and distance computations).
    pub fn row_f32(&self, i: usize) -> Vec<f32> {
        let r = i * self.dim..(i + 1) * self.dim;
        match &self.elems {
            Elems::F32(v) => v[r].to_vec(),
            Elems::I8(v) => v[r].iter().map(|&x| f32::from(x)).collect(),
            Elems::U8(v) => v[r].iter().map(|&x| f32::from(x)).collect(),
            #[allow(clippy::cast_precision_loss)]
            Elems::I32(v) => v[r].iter().map(|&x| x as f32).collect(),
            #[allow(clippy::cast_precision_loss)]
            Elems::I64(v) => v[r].iter().map(|&x| x as f32).collect(),
        }
    }

    /// Row `i` as vector ids (for ground-truth files): integers >= 0.
    pub fn row_ids(&self, i: usize) -> Result<Vec<u64>, String> {
        let r = i * self.dim..(i + 1) * self.dim;
        let bad = || format!("row {}: ids must be integers >= 0", i);
        match &self.elems {
            Elems::I32(v) => v[r]
                .iter()
                .map(|&x| u64::try_from(x).map_err(|_| bad()))
                .collect(),
            Elems::I64(v) => v[r]
                .iter()
                .map(|&x| u64::try_from(x).map_err(|_| bad()))
                .collect(),
            Elems::U8(v) => Ok(v[r].iter().map(|&x| u64::from(x)).collect()),
            _ => Err(format!("{} elements are not ids", self.type_name())),
        }
    }
}

/// Parses an inline vector, comma-separated numbers (`0.5,-1,2e-3`).
pub fn parse_inline(s: &str) -> Result<Vec<f32>, String> {
    s.split(',')
        .map(|t| {
            let t = t.trim();
            match t.parse::<f32>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(format!("bad vector element '{}'", t)),
            }
        })
        .collect()
}

/// Test helpers: writers of the formats.
#[cfg(test)]
pub(crate) mod write {
    /// An `.npy` file of the given version, dtype and shape around `body`.
    pub(crate) fn npy(version: u8, descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
            descr, shape
        );
        let pre = if version == 1 { 10 } else { 12 };
        let mut h = dict.into_bytes();
        while (pre + h.len() + 1) % 64 != 0 {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = b"\x93NUMPY".to_vec();
        out.push(version);
        out.push(0);
        if version == 1 {
            out.extend_from_slice(&u16::try_from(h.len()).unwrap().to_le_bytes());
        } else {
            out.extend_from_slice(&u32::try_from(h.len()).unwrap().to_le_bytes());
        }
        out.extend_from_slice(&h);
        out.extend_from_slice(body);
        out
    }

    /// An `.fvecs` file.
    pub(crate) fn fvecs(rows: &[&[f32]]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in rows {
            out.extend_from_slice(&i32::try_from(r.len()).unwrap().to_le_bytes());
            for x in *r {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_body(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn npy_v1_f4() {
        let v = [1.0f32, -2.5, 3.0, 0.0, 5.5, 6.0];
        let f = write::npy(1, "<f4", "(2, 3)", &f32_body(&v));
        assert_eq!(f.len() % 64, 24); // 64-byte aligned header, then the data
        let m = parse_npy(&f).unwrap();
        assert_eq!((m.rows, m.dim), (2, 3));
        assert_eq!(m.elems, Elems::F32(v.to_vec()));
        assert_eq!(m.row_f32(1), vec![0.0, 5.5, 6.0]);
        assert_eq!(
            m.f32_bits(1, 2).unwrap(),
            vec![0, 5.5f32.to_bits(), 6.0f32.to_bits()]
        );
    }

    #[test]
    fn npy_v2_i1() {
        let body = [1u8, 0xff, 0x80, 0x7f];
        let f = write::npy(2, "|i1", "(2, 2)", &body);
        let m = parse_npy(&f).unwrap();
        assert_eq!((m.rows, m.dim), (2, 2));
        assert_eq!(m.elems, Elems::I8(vec![1, -1, -128, 127]));
        assert_eq!(m.i8s(0, 2).unwrap(), vec![1, -1, -128, 127]);
        assert_eq!(
            m.f32_bits(0, 1).unwrap(),
            vec![1.0f32.to_bits(), (-1.0f32).to_bits()]
        );
        // Version 3 only allows UTF-8 in the header: the same layout.
        let m3 = parse_npy(&write::npy(3, "|i1", "(2, 2)", &body)).unwrap();
        assert_eq!(m3, m);
    }

    #[test]
    fn npy_header_written_by_numpy() {
        // As numpy 1.x/2.x write it, with the trailing comma and padding.
        let mut f = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }";
        let mut h = h.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        f.extend_from_slice(&u16::try_from(h.len()).unwrap().to_le_bytes());
        f.extend_from_slice(h.as_bytes());
        f.extend_from_slice(&f32_body(&[7.0, 8.0]));
        let m = parse_npy(&f).unwrap();
        assert_eq!(m.row_f32(0), vec![7.0, 8.0]);
    }

    #[test]
    fn npy_one_dimension_is_one_vector() {
        let f = write::npy(1, "<f4", "(3,)", &f32_body(&[1.0, 2.0, 3.0]));
        let m = parse_npy(&f).unwrap();
        assert_eq!((m.rows, m.dim), (1, 3));
    }

    #[test]
    fn npy_fortran_order() {
        // numpy.asfortranarray([[1, 2, 3], [4, 5, 6]]) is stored by column.
        let mut f = write::npy(
            1,
            "<f4",
            "(2, 3)",
            &f32_body(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]),
        );
        let pos = f.windows(5).position(|w| w == b"False").unwrap();
        f.splice(pos..pos + 5, b"True ".iter().copied());
        let m = parse_npy(&f).unwrap();
        assert_eq!(m.row_f32(0), vec![1.0, 2.0, 3.0]);
        assert_eq!(m.row_f32(1), vec![4.0, 5.0, 6.0]);
    }

    #[test]
    fn npy_f8_and_ints() {
        let body: Vec<u8> = [0.5f64, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let m = parse_npy(&write::npy(1, "<f8", "(1, 2)", &body)).unwrap();
        assert_eq!(m.elems, Elems::F32(vec![0.5, 2.0]));
        let body: Vec<u8> = [3i64, 9].iter().flat_map(|x| x.to_le_bytes()).collect();
        let m = parse_npy(&write::npy(1, "<i8", "(1, 2)", &body)).unwrap();
        assert_eq!(m.row_ids(0).unwrap(), vec![3, 9]);
        let body: Vec<u8> = [-3i32, 9].iter().flat_map(|x| x.to_le_bytes()).collect();
        let m = parse_npy(&write::npy(1, "<i4", "(2, 1)", &body)).unwrap();
        assert!(m.row_ids(0).is_err());
        assert_eq!(m.row_ids(1).unwrap(), vec![9]);
    }

    #[test]
    fn npy_errors() {
        let ok = write::npy(1, "<f4", "(1, 2)", &f32_body(&[1.0, 2.0]));
        // Truncated data, too much data.
        assert!(parse_npy(&ok[..ok.len() - 1])
            .unwrap_err()
            .contains("bytes"));
        let mut long = ok.clone();
        long.push(0);
        assert!(parse_npy(&long).is_err());
        // Big endian, unknown dtypes, 3-D, Fortran order.
        assert!(parse_npy(&write::npy(1, ">f4", "(1, 2)", &[0; 8]))
            .unwrap_err()
            .contains("big-endian"));
        assert!(parse_npy(&write::npy(1, "<c8", "(1, 1)", &[0; 8])).is_err());
        assert!(parse_npy(&write::npy(1, "<f4", "(1, 1, 2)", &[0; 8])).is_err());
        // Garbage headers never panic.
        assert!(parse_npy(b"\x93NUMPY").is_err());
        assert!(parse_npy(b"\x93NUMPY\x09\x00\x00\x00").is_err());
        assert!(parse_npy(b"\x93NUMPY\x01\x00\xff\xff{").is_err());
        for cut in 0..ok.len() {
            let _ = parse_npy(&ok[..cut]);
        }
        let h = |s: &str| {
            let mut f = b"\x93NUMPY\x01\x00".to_vec();
            f.extend_from_slice(&u16::try_from(s.len()).unwrap().to_le_bytes());
            f.extend_from_slice(s.as_bytes());
            parse_npy(&f)
        };
        for bad in [
            "",
            "{",
            "{'descr'",
            "{'descr': }",
            "{'descr': '<f4', 'shape': (1,,), 'fortran_order': False}",
            "{'descr': '<f4', 'shape': (99999999999999999999999,), 'fortran_order': False}",
            "{'descr': '<f4', 'shape': (4294967296, 4294967296), 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': 1}",
        ] {
            assert!(h(bad).is_err(), "{}", bad);
        }
        // An empty shape tuple is a scalar: not a vector file.
        assert!(h("{'descr': '<f4', 'fortran_order': False, 'shape': ()}").is_err());
    }

    #[test]
    fn fvecs_roundtrip() {
        let f = write::fvecs(&[&[1.0, 2.0], &[3.0, -4.0], &[0.25, 0.5]]);
        let m = parse_xvecs(&f, XKind::F).unwrap();
        assert_eq!((m.rows, m.dim), (3, 2));
        assert_eq!(m.row_f32(1), vec![3.0, -4.0]);
    }

    #[test]
    fn bvecs_and_ivecs() {
        let mut f = Vec::new();
        for r in [[1u8, 200, 3], [4, 5, 6]] {
            f.extend_from_slice(&3i32.to_le_bytes());
            f.extend_from_slice(&r);
        }
        let m = parse_xvecs(&f, XKind::B).unwrap();
        assert_eq!((m.rows, m.dim), (2, 3));
        assert_eq!(m.row_f32(0), vec![1.0, 200.0, 3.0]);
        assert!(m.i8s(0, 1).is_err()); // 200 does not fit
        assert_eq!(m.i8s(1, 2).unwrap(), vec![4, 5, 6]);
        let mut f = Vec::new();
        for r in [[7i32, 8], [9, 10]] {
            f.extend_from_slice(&2i32.to_le_bytes());
            for x in r {
                f.extend_from_slice(&x.to_le_bytes());
            }
        }
        let m = parse_xvecs(&f, XKind::I).unwrap();
        assert_eq!(m.row_ids(1).unwrap(), vec![9, 10]);
        assert!(m.f32_bits(0, 1).is_err());
    }

    #[test]
    fn xvecs_errors() {
        assert!(parse_xvecs(&[], XKind::F).is_err());
        assert!(parse_xvecs(&0i32.to_le_bytes(), XKind::F).is_err());
        assert!(parse_xvecs(&(-1i32).to_le_bytes(), XKind::F).is_err());
        assert!(parse_xvecs(&i32::MAX.to_le_bytes(), XKind::F).is_err());
        let mut f = write::fvecs(&[&[1.0, 2.0]]);
        f.extend_from_slice(&write::fvecs(&[&[1.0, 2.0, 3.0]]));
        assert!(parse_xvecs(&f, XKind::F).is_err());
        // Same total size, different dimension in the second record.
        let mut f = write::fvecs(&[&[1.0, 2.0], &[3.0, 4.0]]);
        f[12] = 1;
        assert!(parse_xvecs(&f, XKind::F).unwrap_err().contains("vector 1"));
        let f = write::fvecs(&[&[1.0, 2.0]]);
        assert!(parse_xvecs(&f[..f.len() - 1], XKind::F).is_err());
    }

    #[test]
    fn non_finite_and_i8_conversion() {
        let m = Matrix::from_f32(2, vec![1.0, f32::NAN, 1.0, 2.0]);
        assert!(m.f32_bits(0, 2).unwrap_err().contains("vector 0"));
        assert!(m.f32_bits(1, 2).is_ok());
        let m = Matrix::from_f32(2, vec![1.0, -128.0, 127.0, 0.5]);
        assert_eq!(m.i8s(0, 1).unwrap(), vec![1, -128]);
        assert!(m.i8s(1, 2).is_err());
        assert!(Matrix::from_f32(1, vec![128.0]).i8s(0, 1).is_err());
    }

    #[test]
    fn inline_vectors() {
        assert_eq!(parse_inline("1, -2.5,3e1").unwrap(), vec![1.0, -2.5, 30.0]);
        assert!(parse_inline("1,,2").is_err());
        assert!(parse_inline("1,nan").is_err());
        assert!(parse_inline("inf").is_err());
        assert!(parse_inline("x").is_err());
    }

    #[test]
    fn load_by_extension() {
        let dir = std::env::temp_dir().join(format!("vexctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.fvecs");
        std::fs::write(&p, write::fvecs(&[&[1.0, 2.0]])).unwrap();
        assert_eq!(load(&p).unwrap().dim, 2);
        let p = dir.join("a.data");
        std::fs::write(&p, write::npy(1, "<f4", "(1, 1)", &f32_body(&[1.0]))).unwrap();
        assert_eq!(load(&p).unwrap().dim, 1);
        let p = dir.join("b.data");
        std::fs::write(&p, b"hello").unwrap();
        assert!(load(&p).is_err());
        assert!(load(&dir.join("missing.npy")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
