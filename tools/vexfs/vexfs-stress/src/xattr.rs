// SPDX-License-Identifier: GPL-2.0

//! Extended attributes: `vexfs-stress xattr FILE OP ...`, one call of `setxattr(2)`,
//! `getxattr(2)`, `listxattr(2)` or `removexattr(2)` for the shell tests (busybox has no
//! setfattr or getfattr), and `vexfs-stress xattr-model FILE [--ops N] [--seed S]`, random
//! calls against a model of the attributes, checked after every call.

use crate::{
    common::{
        errno,
        errno_name,
        Rng, //
    },
    format,
};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{
    AtomicBool,
    Ordering, //
};

fn cpath(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| "path with a NUL".to_string())
}

fn cname(name: &str) -> Result<CString, String> {
    CString::new(name).map_err(|_| "name with a NUL".to_string())
}

/// Whether the calls act on a symbolic link itself (`lsetxattr(2)`, ...), for `nofollow`.
static NOFOLLOW: AtomicBool = AtomicBool::new(false);

fn nofollow() -> bool {
    NOFOLLOW.load(Ordering::Relaxed)
}

fn last_errno() -> i32 {
    errno(&io::Error::last_os_error())
}

/// `setxattr(2)`; `Err(errno)` on failure.
fn set(path: &CString, name: &CString, value: &[u8], flags: i32) -> Result<(), i32> {
    let f = if nofollow() {
        libc::lsetxattr
    } else {
        libc::setxattr
    };
    // SAFETY: The path and name are NUL-terminated; `value` is valid for its length.
    let r = unsafe {
        f(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// `getxattr(2)` with a buffer of `size` bytes; the value (its length only for `size` 0).
fn get(path: &CString, name: &CString, size: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; size];
    let f = if nofollow() {
        libc::lgetxattr
    } else {
        libc::getxattr
    };
    // SAFETY: As above; `buf` is valid for writes of `size` bytes.
    let r = unsafe { f(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), size) };
    if r < 0 {
        return Err(last_errno());
    }
    if size == 0 {
        return Ok(vec![0; r as usize]);
    }
    buf.truncate(r as usize);
    Ok(buf)
}

/// The value of `name`, read with a buffer of the size `getxattr(2)` reports first.
fn get_value(path: &CString, name: &CString) -> Result<Vec<u8>, i32> {
    let len = get(path, name, 0)?.len();
    get(path, name, len.max(1)).map(|v| v[..len.min(v.len())].to_vec())
}

/// `listxattr(2)`: the names, sorted.
fn list(path: &CString) -> Result<Vec<String>, i32> {
    let lister = if nofollow() {
        libc::llistxattr
    } else {
        libc::listxattr
    };
    // SAFETY: As above; a null buffer of size 0 asks for the length.
    let len = unsafe { lister(path.as_ptr(), std::ptr::null_mut(), 0) };
    if len < 0 {
        return Err(last_errno());
    }
    let mut buf = vec![0u8; len as usize];
    // SAFETY: As above; `buf` is valid for writes of its length.
    let r = unsafe { lister(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(last_errno());
    }
    buf.truncate(r as usize);
    let mut names: Vec<String> = buf
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// `removexattr(2)`.
fn remove(path: &CString, name: &CString) -> Result<(), i32> {
    let f = if nofollow() {
        libc::lremovexattr
    } else {
        libc::removexattr
    };
    // SAFETY: As above.
    if unsafe { f(path.as_ptr(), name.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// The tags of ACL entries (`ACL_*` of `<linux/posix_acl.h>`), with their letter.
const ACL_TAGS: [(u16, &str); 6] = [
    (0x01, "u"),
    (0x02, "u"),
    (0x04, "g"),
    (0x08, "g"),
    (0x10, "m"),
    (0x20, "o"),
];

/// Encodes an ACL written as `u::rw-,u:1000:r--,g::---,m::r--,o::---` (entries in the order
/// the kernel wants: owner, users by id, group, groups by id, mask, other) in the form of
/// `struct posix_acl_xattr_header`.
fn acl_encode(spec: &str) -> Result<Vec<u8>, String> {
    let mut out = 2u32.to_le_bytes().to_vec();
    for e in spec.split(',') {
        let f: Vec<&str> = e.split(':').collect();
        let [kind, id, perm] = f[..] else {
            return Err(format!("acl entry {e}: not KIND:ID:PERM"));
        };
        let tag: u16 = match (kind, id.is_empty()) {
            ("u", true) => 0x01,
            ("u", false) => 0x02,
            ("g", true) => 0x04,
            ("g", false) => 0x08,
            ("m", true) => 0x10,
            ("o", true) => 0x20,
            _ => return Err(format!("acl entry {e}: bad kind")),
        };
        let id: u32 = if id.is_empty() {
            u32::MAX
        } else {
            id.parse().map_err(|_| format!("acl entry {e}: bad id"))?
        };
        let mut bits = 0u16;
        for (i, c) in perm.chars().enumerate() {
            match (i, c) {
                (0, 'r') => bits |= 4,
                (1, 'w') => bits |= 2,
                (2, 'x') => bits |= 1,
                (_, '-') => {}
                _ => return Err(format!("acl entry {e}: bad permissions")),
            }
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

/// Decodes an ACL encoded by [`acl_encode`] (or by the kernel) back to its text.
fn acl_decode(v: &[u8]) -> String {
    let entries = v.get(4..).unwrap_or_default().chunks_exact(8).map(|e| {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let kind = ACL_TAGS.iter().find(|t| t.0 == tag).map_or("?", |t| t.1);
        let id = if tag == 0x02 || tag == 0x08 {
            id.to_string()
        } else {
            String::new()
        };
        let p = |bit: u16, c: char| if perm & bit != 0 { c } else { '-' };
        format!("{kind}:{id}:{}{}{}", p(4, 'r'), p(2, 'w'), p(1, 'x'))
    });
    entries.collect::<Vec<_>>().join(",")
}

/// The attribute name of an ACL type given as `access` or `default`.
fn acl_name(which: &str) -> Result<CString, String> {
    match which {
        "access" | "default" => cname(&format!("system.posix_acl_{which}")),
        _ => Err(format!("acl type {which}: not access or default")),
    }
}

/// Opens `path` for reading (`write` false) or writing, and reads one byte or writes none.
fn open_check(path: &Path, write: bool) -> Result<(), i32> {
    let mut f = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open(path)
        .map_err(|e| errno(&e))?;
    if !write {
        let mut b = [0u8; 1];
        std::io::Read::read(&mut f, &mut b).map_err(|e| errno(&e))?;
    }
    Ok(())
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// `vexfs-stress xattr FILE [as UID] OP [ARGS]`: `set NAME VALUE [create|replace]`, `get NAME`
/// (the value as text), `size NAME` (its length, from a call with an empty buffer), `small
/// NAME` (a call with a 1-byte buffer), `list` (the names, one per line), `remove NAME`,
/// `dump` (every readable attribute as `NAME=HEX`), `setacl access|default SPEC`, `getacl
/// access|default`, `rmacl access|default` (POSIX ACLs as `u::rw-,u:1000:r--,g::---,m::r--,
/// o::---`), `read` and `write` (an open for reading, with a read of one byte, or for
/// writing). Prints the result or the errno's name. With `as UID` the call is made as that
/// user and group, without capabilities; with `nofollow` (after it) on a symbolic link itself.
pub(crate) fn run(path: &Path, args: &[String]) -> Result<String, String> {
    let p = cpath(path)?;
    let args = match args {
        [kw, uid, rest @ ..] if kw == "as" && !rest.is_empty() => {
            let uid: libc::uid_t = uid.parse().map_err(|_| format!("xattr: bad uid {uid}"))?;
            // SAFETY: Plain system calls changing the credentials of this process.
            if unsafe {
                libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0
            } {
                return Err(format!(
                    "xattr: cannot become user {uid}: {}",
                    io::Error::last_os_error()
                ));
            }
            rest
        }
        _ => args,
    };
    let args = match args {
        [kw, rest @ ..] if kw == "nofollow" && !rest.is_empty() => {
            NOFOLLOW.store(true, Ordering::Relaxed);
            rest
        }
        _ => args,
    };
    let arg = |i: usize| {
        args.get(i)
            .ok_or_else(|| format!("xattr: {} needs more arguments", args[0]))
    };
    let res: Result<String, i32> =
        match args.first().map(String::as_str) {
            Some("set") => {
                let flags = match args.get(3).map(String::as_str) {
                    None => 0,
                    Some("create") => libc::XATTR_CREATE,
                    Some("replace") => libc::XATTR_REPLACE,
                    Some(f) => return Err(format!("xattr: unknown flag {f}")),
                };
                set(&p, &cname(arg(1)?)?, arg(2)?.as_bytes(), flags).map(|()| "ok".to_string())
            }
            Some("get") => {
                get_value(&p, &cname(arg(1)?)?).map(|v| String::from_utf8_lossy(&v).into_owned())
            }
            Some("size") => get(&p, &cname(arg(1)?)?, 0).map(|v| v.len().to_string()),
            Some("small") => get(&p, &cname(arg(1)?)?, 1).map(|v| v.len().to_string()),
            Some("list") => list(&p).map(|n| n.join("\n")),
            Some("setacl") => {
                set(&p, &acl_name(arg(1)?)?, &acl_encode(arg(2)?)?, 0).map(|()| "ok".to_string())
            }
            Some("getacl") => get_value(&p, &acl_name(arg(1)?)?).map(|v| acl_decode(&v)),
            Some("rmacl") => remove(&p, &acl_name(arg(1)?)?).map(|()| "ok".to_string()),
            Some("read") => open_check(path, false).map(|()| "ok".to_string()),
            Some("write") => open_check(path, true).map(|()| "ok".to_string()),
            Some("remove") => remove(&p, &cname(arg(1)?)?).map(|()| "ok".to_string()),
            Some("dump") => list(&p).and_then(|names| {
                let mut out = Vec::new();
                for n in names {
                    let v = get_value(&p, &cname(&n).map_err(|_| libc::EINVAL)?)?;
                    out.push(format!("{n}={}", hex(&v)));
                }
                Ok(out.join("\n"))
            }),
            _ => return Err(
                "xattr: OP is set, get, size, small, list, remove, dump, setacl, getacl, rmacl, \
                 read or write"
                    .to_string(),
            ),
        };
    Ok(res.unwrap_or_else(errno_name))
}

/// Room for entries in a VexFS attribute block.
const BLOCK_ROOM: usize = format::BLOCK_SIZE - format::XATTR_HEADER;

/// The prefix and the part after it of `name`.
fn split(name: &str) -> (&str, &str) {
    let i = name.find('.').map_or(0, |i| i + 1);
    name.split_at(i)
}

/// `vexfs-stress xattr-model FILE [--ops N] [--seed S]`: random sets (plain, `XATTR_CREATE`,
/// `XATTR_REPLACE`), removals, reads and lists of `user.`, `trusted.` and `security.`
/// attributes of `FILE` against a model, checked after each call: `EEXIST`, `ENODATA` and
/// `ENOSPC` exactly when the model says (the last from the VexFS block size), the list and
/// every value at the end. Needs `CAP_SYS_ADMIN` for `trusted.`.
pub(crate) fn model(path: &Path, ops: u64, seed: u64) -> Result<String, String> {
    println!("seed {seed}");
    let p = cpath(path)?;
    let mut rng = Rng::new(seed);
    let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, v) in list(&p)
        .map_err(|e| format!("listxattr: {}", errno_name(e)))?
        .into_iter()
        .map(|n| {
            let v = get_value(&p, &cname(&n).unwrap_or_default());
            (n, v)
        })
    {
        m.insert(name, v.map_err(|e| format!("getxattr: {}", errno_name(e)))?);
    }
    let (mut sets, mut removes, mut nospc, mut refused) = (0u64, 0u64, 0u64, 0u64);
    let prefixes = ["user.", "trusted.", "security."];
    for op in 0..ops {
        let names = if rng.chance(1, 8) { 200 } else { 30 };
        let name = format!("{}n{}", prefixes[rng.below(3) as usize], rng.below(names));
        let c = cname(&name)?;
        let fail = |what: &str, got: String| {
            Err(format!(
                "xattr-model: op {op} (seed {seed}): {what} {name}: {got}"
            ))
        };
        match rng.below(10) {
            0..=5 => {
                let len = match rng.below(10) {
                    0 => 0,
                    1 => rng.below(4000) as usize,
                    _ => rng.below(200) as usize,
                };
                let value: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let flags = match rng.below(4) {
                    0 => libc::XATTR_CREATE,
                    1 => libc::XATTR_REPLACE,
                    _ => 0,
                };
                let exists = m.contains_key(&name);
                let used: usize = m
                    .iter()
                    .filter(|(n, _)| **n != name)
                    .map(|(n, v)| format::xattr_entry_size(split(n).1.len(), v.len()))
                    .sum();
                let fits = used + format::xattr_entry_size(split(&name).1.len(), len) <= BLOCK_ROOM;
                let want = if flags == libc::XATTR_CREATE && exists {
                    Err(libc::EEXIST)
                } else if flags == libc::XATTR_REPLACE && !exists {
                    Err(libc::ENODATA)
                } else if !fits {
                    Err(libc::ENOSPC)
                } else {
                    Ok(())
                };
                let got = set(&p, &c, &value, flags);
                if got != want {
                    return fail(
                        &format!("set ({len} bytes, flags {flags})"),
                        format!(
                            "{:?}, expected {:?}",
                            got.map_err(errno_name),
                            want.map_err(errno_name)
                        ),
                    );
                }
                match got {
                    Ok(()) => {
                        m.insert(name.clone(), value);
                        sets += 1;
                    }
                    Err(libc::ENOSPC) => nospc += 1,
                    Err(_) => refused += 1,
                }
            }
            6..=7 => {
                let want = if m.contains_key(&name) {
                    Ok(())
                } else {
                    Err(libc::ENODATA)
                };
                let got = remove(&p, &c);
                if got != want {
                    return fail("remove", format!("{:?}", got.map_err(errno_name)));
                }
                if m.remove(&name).is_some() {
                    removes += 1;
                }
            }
            8 => {
                let got = get_value(&p, &c);
                let want = m.get(&name).cloned().ok_or(libc::ENODATA);
                if got != want {
                    return fail(
                        "get",
                        format!("{:?}", got.map(|v| v.len()).map_err(errno_name)),
                    );
                }
                // A buffer of 0 bytes asks for the length: short buffers from 1 byte on.
                if let Some(v) = m.get(&name).filter(|v| v.len() > 1) {
                    let small = get(&p, &c, v.len() - 1);
                    if small != Err(libc::ERANGE) {
                        return fail(
                            "get with a short buffer",
                            format!("{:?}", small.map(|v| v.len())),
                        );
                    }
                }
            }
            _ => {
                let got = list(&p).map_err(errno_name)?;
                let want: Vec<String> = m.keys().cloned().collect();
                if got != want {
                    return fail("list", format!("{got:?}, expected {want:?}"));
                }
            }
        }
    }
    for (name, v) in &m {
        let got = get_value(&p, &cname(name)?);
        if got.as_ref() != Ok(v) {
            return Err(format!(
                "xattr-model: final {name}: {:?}",
                got.map(|v| v.len())
            ));
        }
    }
    Ok(format!(
        "xattr-model: {ops} ops: {sets} sets, {removes} removals, {nospc} ENOSPC, {refused} \
         EEXIST/ENODATA, {} attributes left, seed {seed}",
        m.len()
    ))
}
