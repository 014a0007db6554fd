// SPDX-License-Identifier: GPL-2.0

//! The in-memory model of a directory tree that `fsstress` keeps for the subtree each process
//! owns: every file's contents, names, link counts, symbolic link targets, directory entries
//! and modes. Each namespace operation has a `predict_*` method (what the real call must do)
//! and an `apply_*` one (the model after the call succeeded).

use std::collections::{
    BTreeMap,
    HashMap, //
};

/// A node (inode) of the model.
pub(crate) type Id = u64;

/// The root of the model (the owned subtree itself).
pub(crate) const ROOT: Id = 0;

/// What a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file and its contents.
    File(Vec<u8>),
    /// A directory and its entries.
    Dir(BTreeMap<String, Id>),
    /// A symbolic link and its target.
    Sym(String),
}

/// An inode of the model.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// What it is.
    pub(crate) kind: Kind,
    /// Permission bits (`st_mode & 0o7777`).
    pub(crate) mode: u32,
    /// Names that refer to it (for directories, always 1 but for the root).
    pub(crate) names: u32,
    /// Open file descriptions of it that the worker keeps.
    pub(crate) opens: u32,
}

/// The outcome a call must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Success.
    Ok,
    /// Success that changes nothing (a rename onto itself or a hard link of itself).
    Noop,
    /// Failure with one of these errnos.
    Err(&'static [i32]),
}

/// A path inside the model: the names from the root.
pub(crate) type Path = Vec<String>;

/// The model of a directory tree.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    nodes: HashMap<Id, Node>,
    next: Id,
}

const EEXIST: &[i32] = &[libc::EEXIST];
const ENOTEMPTY: &[i32] = &[libc::ENOTEMPTY, libc::EEXIST];
const EINVAL: &[i32] = &[libc::EINVAL];
const ENOTDIR: &[i32] = &[libc::ENOTDIR];
const EISDIR: &[i32] = &[libc::EISDIR];
const ENOENT: &[i32] = &[libc::ENOENT];

impl Model {
    /// An empty tree whose root has permissions `mode`.
    pub(crate) fn new(mode: u32) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                kind: Kind::Dir(BTreeMap::new()),
                mode,
                names: 1,
                opens: 0,
            },
        );
        Model { nodes, next: 1 }
    }

    /// Node `id` (which must exist).
    pub(crate) fn node(&self, id: Id) -> &Node {
        &self.nodes[&id]
    }

    /// Node `id`, mutable.
    pub(crate) fn node_mut(&mut self, id: Id) -> &mut Node {
        self.nodes.get_mut(&id).expect("model node")
    }

    /// Whether node `id` exists (named or open).
    #[cfg(test)]
    pub(crate) fn exists(&self, id: Id) -> bool {
        self.nodes.contains_key(&id)
    }

    /// The entries of directory `id`.
    pub(crate) fn entries_of(&self, id: Id) -> &BTreeMap<String, Id> {
        match &self.nodes[&id].kind {
            Kind::Dir(e) => e,
            _ => panic!("not a directory"),
        }
    }

    fn entries_mut(&mut self, id: Id) -> &mut BTreeMap<String, Id> {
        match &mut self.node_mut(id).kind {
            Kind::Dir(e) => e,
            _ => panic!("not a directory"),
        }
    }

    /// The node at `path`, if any.
    pub(crate) fn lookup(&self, path: &[String]) -> Option<Id> {
        let mut id = ROOT;
        for name in path {
            match &self.nodes.get(&id)?.kind {
                Kind::Dir(e) => id = *e.get(name)?,
                _ => return None,
            }
        }
        Some(id)
    }

    /// Every path of the tree but the root, parents before children.
    pub(crate) fn paths(&self) -> Vec<(Path, Id)> {
        let mut out = Vec::new();
        let mut stack = vec![(Vec::new(), ROOT)];
        while let Some((p, id)) = stack.pop() {
            if let Kind::Dir(e) = &self.nodes[&id].kind {
                for (name, &c) in e {
                    let mut cp = p.clone();
                    cp.push(name.clone());
                    if matches!(self.nodes[&c].kind, Kind::Dir(_)) {
                        stack.push((cp.clone(), c));
                    }
                    out.push((cp, c));
                }
            }
        }
        out
    }

    /// The directories of the tree, the root included.
    pub(crate) fn dirs(&self) -> Vec<(Path, Id)> {
        let mut v = vec![(Vec::new(), ROOT)];
        v.extend(
            self.paths()
                .into_iter()
                .filter(|(_, id)| matches!(self.nodes[id].kind, Kind::Dir(_))),
        );
        v
    }

    /// The link count `stat` must report for `id` (directories: 2 + subdirectories).
    pub(crate) fn nlink(&self, id: Id) -> u32 {
        let n = &self.nodes[&id];
        match &n.kind {
            Kind::Dir(e) => {
                2 + e
                    .values()
                    .filter(|c| matches!(self.nodes[c].kind, Kind::Dir(_)))
                    .count() as u32
            }
            _ => n.names,
        }
    }

    /// Bytes of file data the model holds.
    pub(crate) fn bytes(&self) -> usize {
        self.nodes
            .values()
            .map(|n| match &n.kind {
                Kind::File(d) => d.len(),
                _ => 0,
            })
            .sum()
    }

    /// Splits `path` into its parent directory and last name.
    fn split(path: &[String]) -> (&[String], &str) {
        let (last, dir) = path.split_last().expect("non-root path");
        (dir, last)
    }

    /// A new name `path` (for creat with O_EXCL, mkdir, symlink, link).
    pub(crate) fn predict_new(&self, path: &[String]) -> Expect {
        let (dir, _) = Self::split(path);
        match self.lookup(dir).map(|d| &self.nodes[&d].kind) {
            Some(Kind::Dir(_)) => {}
            Some(_) => return Expect::Err(ENOTDIR),
            None => return Expect::Err(ENOENT),
        }
        if self.lookup(path).is_some() {
            Expect::Err(EEXIST)
        } else {
            Expect::Ok
        }
    }

    fn add(&mut self, path: &[String], kind: Kind, mode: u32) -> Id {
        let (dir, name) = Self::split(path);
        let d = self.lookup(dir).expect("parent");
        let id = self.next;
        self.next += 1;
        self.nodes.insert(
            id,
            Node {
                kind,
                mode,
                names: 1,
                opens: 0,
            },
        );
        self.entries_mut(d).insert(name.to_string(), id);
        id
    }

    /// Creates an empty file at `path` (after [`Model::predict_new`] said `Ok`).
    pub(crate) fn apply_create(&mut self, path: &[String], mode: u32) -> Id {
        self.add(path, Kind::File(Vec::new()), mode)
    }

    /// Creates a directory at `path`.
    pub(crate) fn apply_mkdir(&mut self, path: &[String], mode: u32) -> Id {
        self.add(path, Kind::Dir(BTreeMap::new()), mode)
    }

    /// Creates a symbolic link at `path`.
    pub(crate) fn apply_symlink(&mut self, path: &[String], target: &str) -> Id {
        self.add(path, Kind::Sym(target.to_string()), 0o777)
    }

    /// Adds name `path` for the non-directory `id`.
    pub(crate) fn apply_link(&mut self, id: Id, path: &[String]) {
        let (dir, name) = Self::split(path);
        let d = self.lookup(dir).expect("parent");
        self.entries_mut(d).insert(name.to_string(), id);
        self.node_mut(id).names += 1;
    }

    /// Drops one name of `id`; frees it when it has neither names nor open descriptions.
    fn unname(&mut self, id: Id) {
        let n = self.node_mut(id);
        n.names -= 1;
        if n.names == 0 && n.opens == 0 {
            self.free(id);
        }
    }

    fn free(&mut self, id: Id) {
        if let Some(Node {
            kind: Kind::Dir(e), ..
        }) = self.nodes.remove(&id)
        {
            assert!(e.is_empty(), "freeing a non-empty directory");
        }
    }

    /// Removes the non-directory name `path`.
    pub(crate) fn apply_unlink(&mut self, path: &[String]) {
        let (dir, name) = Self::split(path);
        let d = self.lookup(dir).expect("parent");
        let id = self.entries_mut(d).remove(name).expect("entry");
        self.unname(id);
    }

    /// rmdir of `path`.
    pub(crate) fn predict_rmdir(&self, path: &[String]) -> Expect {
        match self.lookup(path) {
            None => Expect::Err(ENOENT),
            Some(id) => match &self.nodes[&id].kind {
                Kind::Dir(e) if e.is_empty() => Expect::Ok,
                Kind::Dir(_) => Expect::Err(ENOTEMPTY),
                _ => Expect::Err(ENOTDIR),
            },
        }
    }

    /// Removes the empty directory `path`.
    pub(crate) fn apply_rmdir(&mut self, path: &[String]) {
        let (dir, name) = Self::split(path);
        let d = self.lookup(dir).expect("parent");
        let id = self.entries_mut(d).remove(name).expect("entry");
        self.unname(id);
    }

    /// rename(2) of `from` to `to`.
    pub(crate) fn predict_rename(&self, from: &[String], to: &[String]) -> Expect {
        let Some(s) = self.lookup(from) else {
            return Expect::Err(ENOENT);
        };
        let (tdir, _) = Self::split(to);
        match self.lookup(tdir).map(|d| &self.nodes[&d].kind) {
            Some(Kind::Dir(_)) => {}
            Some(_) => return Expect::Err(ENOTDIR),
            None => return Expect::Err(ENOENT),
        }
        if from == to {
            return Expect::Noop;
        }
        let s_dir = matches!(self.nodes[&s].kind, Kind::Dir(_));
        if s_dir && to.len() > from.len() && to[..from.len()] == *from {
            return Expect::Err(EINVAL);
        }
        // The target is an ancestor of the source (rename(2) checks this before the types).
        if from.len() > to.len() && from[..to.len()] == *to {
            return Expect::Err(ENOTEMPTY);
        }
        let Some(t) = self.lookup(to) else {
            return Expect::Ok;
        };
        if t == s {
            return Expect::Noop;
        }
        match (&self.nodes[&t].kind, s_dir) {
            (Kind::Dir(e), true) => {
                if e.is_empty() {
                    Expect::Ok
                } else {
                    Expect::Err(ENOTEMPTY)
                }
            }
            (_, true) => Expect::Err(ENOTDIR),
            (Kind::Dir(_), false) => Expect::Err(EISDIR),
            (_, false) => Expect::Ok,
        }
    }

    /// Renames `from` to `to` (after [`Model::predict_rename`] said `Ok`).
    pub(crate) fn apply_rename(&mut self, from: &[String], to: &[String]) {
        let (fdir, fname) = Self::split(from);
        let (tdir, tname) = Self::split(to);
        let fd = self.lookup(fdir).expect("parent");
        let td = self.lookup(tdir).expect("target parent");
        let id = self.entries_mut(fd).remove(fname).expect("entry");
        if let Some(old) = self.entries_mut(td).insert(tname.to_string(), id) {
            self.unname(old);
        }
    }

    /// The contents of file `id`.
    pub(crate) fn data(&self, id: Id) -> &[u8] {
        match &self.nodes[&id].kind {
            Kind::File(d) => d,
            _ => panic!("not a file"),
        }
    }

    /// The contents of file `id`, mutable.
    pub(crate) fn data_mut(&mut self, id: Id) -> &mut Vec<u8> {
        match &mut self.node_mut(id).kind {
            Kind::File(d) => d,
            _ => panic!("not a file"),
        }
    }

    /// A write of `data` at `off` into file `id`.
    pub(crate) fn write(&mut self, id: Id, off: u64, data: &[u8]) {
        let d = self.data_mut(id);
        let off = off as usize;
        if d.len() < off + data.len() {
            d.resize(off + data.len(), 0);
        }
        d[off..off + data.len()].copy_from_slice(data);
    }

    /// A truncate of file `id` to `len`.
    pub(crate) fn truncate(&mut self, id: Id, len: u64) {
        self.data_mut(id).resize(len as usize, 0);
    }

    /// One more open description of `id`.
    pub(crate) fn open(&mut self, id: Id) {
        self.node_mut(id).opens += 1;
    }

    /// One open description of `id` fewer; frees it if it has no name left.
    pub(crate) fn close(&mut self, id: Id) {
        let n = self.node_mut(id);
        n.opens -= 1;
        if n.opens == 0 && n.names == 0 {
            self.free(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.split('/').map(str::to_string).collect()
    }

    #[test]
    fn create_link_unlink() {
        let mut m = Model::new(0o755);
        assert_eq!(m.predict_new(&p("a")), Expect::Ok);
        let a = m.apply_create(&p("a"), 0o644);
        assert_eq!(m.predict_new(&p("a")), Expect::Err(EEXIST));
        assert_eq!(m.predict_new(&p("a/b")), Expect::Err(ENOTDIR));
        assert_eq!(m.predict_new(&p("x/b")), Expect::Err(ENOENT));
        m.write(a, 10, b"hi");
        assert_eq!(m.data(a), b"\0\0\0\0\0\0\0\0\0\0hi");
        m.apply_mkdir(&p("d"), 0o755);
        m.apply_link(a, &p("d/a2"));
        assert_eq!(m.nlink(a), 2);
        assert_eq!(m.nlink(ROOT), 3);
        m.apply_unlink(&p("a"));
        assert_eq!(m.nlink(a), 1);
        assert_eq!(m.lookup(&p("d/a2")), Some(a));
        m.open(a);
        m.apply_unlink(&p("d/a2"));
        assert!(m.exists(a), "open, unlinked file kept");
        m.truncate(a, 3);
        assert_eq!(m.data(a).len(), 3);
        m.close(a);
        assert!(!m.exists(a));
        assert_eq!(m.paths().len(), 1);
    }

    #[test]
    fn rename_rules() {
        let mut m = Model::new(0o755);
        m.apply_mkdir(&p("d"), 0o755);
        m.apply_mkdir(&p("d/e"), 0o755);
        m.apply_mkdir(&p("empty"), 0o755);
        let f = m.apply_create(&p("f"), 0o644);
        m.apply_link(f, &p("g"));
        m.apply_create(&p("d/e/h"), 0o644);
        assert_eq!(m.predict_rename(&p("d"), &p("d/e/x")), Expect::Err(EINVAL));
        assert_eq!(
            m.predict_rename(&p("d/e/h"), &p("d")),
            Expect::Err(ENOTEMPTY)
        );
        assert_eq!(m.predict_rename(&p("d/e"), &p("d")), Expect::Err(ENOTEMPTY));
        assert_eq!(m.predict_rename(&p("d"), &p("d")), Expect::Noop);
        assert_eq!(m.predict_rename(&p("f"), &p("g")), Expect::Noop);
        assert_eq!(m.predict_rename(&p("f"), &p("d")), Expect::Err(EISDIR));
        assert_eq!(m.predict_rename(&p("d"), &p("f")), Expect::Err(ENOTDIR));
        assert_eq!(
            m.predict_rename(&p("empty"), &p("d")),
            Expect::Err(ENOTEMPTY)
        );
        assert_eq!(m.predict_rename(&p("d"), &p("empty")), Expect::Ok);
        assert_eq!(m.predict_rename(&p("nope"), &p("x")), Expect::Err(ENOENT));
        m.apply_rename(&p("d"), &p("empty"));
        assert_eq!(m.lookup(&p("d")), None);
        assert!(m.lookup(&p("empty/e/h")).is_some());
        assert_eq!(m.nlink(ROOT), 3);
        // A file over another file: the target's inode loses a name.
        let x = m.apply_create(&p("x"), 0o600);
        assert_eq!(m.predict_rename(&p("g"), &p("x")), Expect::Ok);
        m.apply_rename(&p("g"), &p("x"));
        assert!(!m.exists(x));
        assert_eq!(m.nlink(f), 2);
        assert_eq!(m.predict_rmdir(&p("empty")), Expect::Err(ENOTEMPTY));
        assert_eq!(m.predict_rmdir(&p("empty/e/h")), Expect::Err(ENOTDIR));
        m.apply_unlink(&p("empty/e/h"));
        assert_eq!(m.predict_rmdir(&p("empty/e")), Expect::Ok);
        m.apply_rmdir(&p("empty/e"));
        assert_eq!(m.nlink(m.lookup(&p("empty")).unwrap_or(ROOT)), 2);
        let s = m.apply_symlink(&p("s"), "target");
        assert_eq!(m.node(s).kind, Kind::Sym("target".into()));
        assert_eq!(m.dirs().len(), 2);
    }
}
