// SPDX-License-Identifier: GPL-2.0

//! Block and inode allocation from the on-disk bitmaps.
//!
//! Both bitmaps are read through the buffer cache. The free counts are computed from the bitmaps
//! at mount time (the counts in the super block are only advisory) and kept in [`AllocState`],
//! whose mutex serialises every change to either bitmap.

use crate::{
    format::{
        self,
        Superblock, //
    },
    super_block::corrupted,
    VexFs,
};
use kernel::{
    fs::sb::{
        self as vfs_sb,
        SuperBlock, //
    },
    prelude::*,
    sync::MutexGuard,
};

/// Free counts and search hints, protected by the allocator mutex.
pub(crate) struct AllocState {
    /// Free data blocks.
    pub(crate) free_blocks: u64,
    /// Free inodes.
    pub(crate) free_inodes: u64,
    /// Where the next block search starts.
    block_hint: u64,
    /// Where the next inode search starts.
    inode_hint: u64,
}

impl AllocState {
    /// Counts the free blocks and inodes in the bitmaps.
    pub(crate) fn scan<S: vfs_sb::State>(
        sb: &SuperBlock<VexFs, S>,
        disk: &Superblock,
    ) -> Result<Self> {
        let count = |start: u64, nblocks: u64, limit: u64| -> Result<u64> {
            let mut used = 0u64;
            for i in 0..nblocks {
                let bh = sb.bread(start + i)?;
                let guard = bh.lock();
                let first = i * format::BITS_PER_BLOCK;
                let bits = limit.saturating_sub(first).min(format::BITS_PER_BLOCK);
                used += format::count_set_bits(guard.data(), bits as usize);
            }
            Ok(used)
        };
        let used_blocks = count(
            disk.block_bitmap_start,
            disk.block_bitmap_blocks,
            disk.block_count,
        )?;
        let used_inodes = count(
            disk.inode_bitmap_start,
            disk.inode_bitmap_blocks,
            disk.inode_count,
        )?;
        if used_blocks < disk.data_start || used_blocks > disk.block_count {
            pr_err!("corrupted block bitmap ({} blocks in use)\n", used_blocks);
            return Err(EUCLEAN);
        }
        if used_inodes < 2 || used_inodes > disk.inode_count {
            pr_err!("corrupted inode bitmap ({} inodes in use)\n", used_inodes);
            return Err(EUCLEAN);
        }
        Ok(Self {
            free_blocks: disk.block_count - used_blocks,
            free_inodes: disk.inode_count - used_inodes,
            block_hint: disk.data_start,
            inode_hint: 1,
        })
    }
}

/// The locked allocator of a mounted VexFS.
pub(crate) struct Allocator<'a> {
    sb: &'a SuperBlock<VexFs>,
    disk: &'a Superblock,
    state: MutexGuard<'a, AllocState>,
}

impl<'a> Allocator<'a> {
    pub(crate) fn new(
        sb: &'a SuperBlock<VexFs>,
        disk: &'a Superblock,
        state: MutexGuard<'a, AllocState>,
    ) -> Self {
        Self { sb, disk, state }
    }

    /// Finds a clear bit in the bitmap at `start` (`nblocks` blocks, `limit` bits), from `hint`
    /// on and then from the beginning, sets it and returns its number.
    fn take_bit(&self, start: u64, nblocks: u64, limit: u64, hint: u64) -> Result<Option<u64>> {
        for pass in 0..2 {
            let from = if pass == 0 { hint } else { 0 };
            let first_block = from / format::BITS_PER_BLOCK;
            for i in first_block..nblocks {
                let base = i * format::BITS_PER_BLOCK;
                let bits = limit.saturating_sub(base).min(format::BITS_PER_BLOCK) as usize;
                let from_bit = if i == first_block {
                    (from - base) as usize
                } else {
                    0
                };
                let bh = self.sb.bread(start + i)?;
                let mut guard = bh.lock();
                if let Some(bit) = format::find_next_zero_bit(guard.data(), from_bit, bits) {
                    format::set_bit(guard.data_mut(), bit).map_err(|_| EIO)?;
                    guard.mark_dirty();
                    return Ok(Some(base + bit as u64));
                }
            }
        }
        Ok(None)
    }

    /// Clears bit `n` of the bitmap at `start`; returns whether it was set.
    fn clear_bit(&self, start: u64, n: u64) -> Result<bool> {
        let bh = self.sb.bread(start + n / format::BITS_PER_BLOCK)?;
        let mut guard = bh.lock();
        let was = format::clear_bit(guard.data_mut(), (n % format::BITS_PER_BLOCK) as usize)
            .map_err(|_| EIO)?;
        guard.mark_dirty();
        Ok(was)
    }

    /// The number of free data blocks.
    pub(crate) fn free_blocks(&self) -> u64 {
        self.state.free_blocks
    }

    /// Allocates a data block.
    pub(crate) fn alloc_block(&mut self) -> Result<u64> {
        if self.state.free_blocks == 0 {
            return Err(ENOSPC);
        }
        let d = self.disk;
        let b = self
            .take_bit(
                d.block_bitmap_start,
                d.block_bitmap_blocks,
                d.block_count,
                self.state.block_hint,
            )?
            .ok_or(ENOSPC)?;
        if !d.is_data_block(b) {
            return Err(corrupted(self.sb, 0, "free block in the metadata area"));
        }
        self.state.free_blocks -= 1;
        self.state.block_hint = b + 1;
        Ok(b)
    }

    /// Frees data block `b`.
    pub(crate) fn free_block(&mut self, b: u64) -> Result {
        if !self.disk.is_data_block(b) {
            return Err(corrupted(
                self.sb,
                0,
                "freeing a block outside the data area",
            ));
        }
        if !self.clear_bit(self.disk.block_bitmap_start, b)? {
            return Err(corrupted(self.sb, 0, "freeing a free block"));
        }
        self.state.free_blocks += 1;
        Ok(())
    }

    /// Allocates an inode number.
    pub(crate) fn alloc_inode(&mut self) -> Result<u64> {
        if self.state.free_inodes == 0 {
            return Err(ENOSPC);
        }
        let d = self.disk;
        let ino = self
            .take_bit(
                d.inode_bitmap_start,
                d.inode_bitmap_blocks,
                d.inode_count,
                self.state.inode_hint,
            )?
            .ok_or(ENOSPC)?;
        if ino < 2 {
            return Err(corrupted(self.sb, ino, "reserved inode marked free"));
        }
        self.state.free_inodes -= 1;
        self.state.inode_hint = ino + 1;
        Ok(ino)
    }

    /// Frees inode number `ino`.
    pub(crate) fn free_inode(&mut self, ino: u64) -> Result {
        if ino < 2 || ino >= self.disk.inode_count {
            return Err(corrupted(self.sb, ino, "freeing an invalid inode"));
        }
        if !self.clear_bit(self.disk.inode_bitmap_start, ino)? {
            return Err(corrupted(self.sb, ino, "freeing a free inode"));
        }
        self.state.free_inodes += 1;
        Ok(())
    }
}
