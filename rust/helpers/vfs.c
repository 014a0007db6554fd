// SPDX-License-Identifier: GPL-2.0

/*
 * Helpers for the Rust file system abstractions (rust/kernel/fs/): static
 * inline functions of the VFS and buffer cache that bindgen cannot call.
 */

#include <linux/buffer_head.h>
#include <linux/dcache.h>
#include <linux/fileattr.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/memcontrol.h>
#include <linux/mpage.h>
#include <linux/pagemap.h>
#include <linux/posix_acl.h>

__rust_helper loff_t rust_helper_i_size_read(const struct inode *inode)
{
	return i_size_read(inode);
}

__rust_helper void rust_helper_i_size_write(struct inode *inode, loff_t i_size)
{
	i_size_write(inode, i_size);
}

__rust_helper uid_t rust_helper_i_uid_read(const struct inode *inode)
{
	return i_uid_read(inode);
}

__rust_helper gid_t rust_helper_i_gid_read(const struct inode *inode)
{
	return i_gid_read(inode);
}

__rust_helper void rust_helper_i_uid_write(struct inode *inode, uid_t uid)
{
	i_uid_write(inode, uid);
}

__rust_helper void rust_helper_i_gid_write(struct inode *inode, gid_t gid)
{
	i_gid_write(inode, gid);
}

__rust_helper struct timespec64 rust_helper_inode_get_atime(const struct inode *inode)
{
	return inode_get_atime(inode);
}

__rust_helper struct timespec64 rust_helper_inode_get_mtime(const struct inode *inode)
{
	return inode_get_mtime(inode);
}

__rust_helper struct timespec64 rust_helper_inode_get_ctime(const struct inode *inode)
{
	return inode_get_ctime(inode);
}

__rust_helper void rust_helper_inode_set_atime_to_ts(struct inode *inode, struct timespec64 ts)
{
	inode_set_atime_to_ts(inode, ts);
}

__rust_helper void rust_helper_inode_set_mtime_to_ts(struct inode *inode, struct timespec64 ts)
{
	inode_set_mtime_to_ts(inode, ts);
}

__rust_helper void rust_helper_inode_set_ctime_to_ts(struct inode *inode, struct timespec64 ts)
{
	inode_set_ctime_to_ts(inode, ts);
}

__rust_helper void rust_helper_mark_inode_dirty(struct inode *inode)
{
	mark_inode_dirty(inode);
}

__rust_helper struct dentry *rust_helper_dget(struct dentry *dentry)
{
	return dget(dentry);
}

__rust_helper bool rust_helper_dir_emit(struct dir_context *ctx, const char *name, int namelen,
					u64 ino, unsigned int type)
{
	return dir_emit(ctx, name, namelen, ino, type);
}

__rust_helper bool rust_helper_sb_rdonly(const struct super_block *sb)
{
	return sb_rdonly(sb);
}

#ifdef CONFIG_BLOCK
__rust_helper loff_t rust_helper_bdev_nr_bytes(struct block_device *bdev)
{
	return bdev_nr_bytes(bdev);
}

#endif /* CONFIG_BLOCK */

#ifdef CONFIG_BUFFER_HEAD
__rust_helper void rust_helper_get_bh(struct buffer_head *bh)
{
	get_bh(bh);
}

__rust_helper void rust_helper_put_bh(struct buffer_head *bh)
{
	put_bh(bh);
}

__rust_helper void rust_helper_lock_buffer(struct buffer_head *bh)
{
	lock_buffer(bh);
}

__rust_helper void rust_helper_map_bh(struct buffer_head *bh, struct super_block *sb,
				      sector_t block)
{
	map_bh(bh, sb, block);
}

__rust_helper void rust_helper_set_buffer_new(struct buffer_head *bh)
{
	set_buffer_new(bh);
}

__rust_helper struct buffer_head *rust_helper_sb_getblk(struct super_block *sb, sector_t block)
{
	return sb_getblk(sb, block);
}

__rust_helper void rust_helper_set_buffer_uptodate(struct buffer_head *bh)
{
	set_buffer_uptodate(bh);
}

__rust_helper int rust_helper_mpage_writepages(struct address_space *mapping,
					       struct writeback_control *wbc,
					       get_block_t get_block)
{
	return mpage_writepages(mapping, wbc, get_block);
}
#endif /* CONFIG_BUFFER_HEAD */

__rust_helper bool rust_helper_inode_is_new(struct inode *inode)
{
	return inode_state_read_once(inode) & I_NEW;
}

__rust_helper void rust_helper_inode_lock(struct inode *inode)
{
	inode_lock(inode);
}

__rust_helper void rust_helper_inode_unlock(struct inode *inode)
{
	inode_unlock(inode);
}

__rust_helper void rust_helper_inode_lock_shared(struct inode *inode)
{
	inode_lock_shared(inode);
}

__rust_helper void rust_helper_inode_unlock_shared(struct inode *inode)
{
	inode_unlock_shared(inode);
}

__rust_helper void rust_helper_filemap_invalidate_lock(struct address_space *mapping)
{
	filemap_invalidate_lock(mapping);
}

__rust_helper void rust_helper_filemap_invalidate_unlock(struct address_space *mapping)
{
	filemap_invalidate_unlock(mapping);
}

__rust_helper void
rust_helper_filemap_invalidate_lock_shared(struct address_space *mapping)
{
	filemap_invalidate_lock_shared(mapping);
}

__rust_helper void
rust_helper_filemap_invalidate_unlock_shared(struct address_space *mapping)
{
	filemap_invalidate_unlock_shared(mapping);
}

#ifdef CONFIG_FS_POSIX_ACL
__rust_helper struct posix_acl *rust_helper_posix_acl_dup(struct posix_acl *acl)
{
	return posix_acl_dup(acl);
}

__rust_helper void rust_helper_posix_acl_release(struct posix_acl *acl)
{
	posix_acl_release(acl);
}
#endif

__rust_helper ssize_t rust_helper_generic_write_sync(struct kiocb *iocb,
						     ssize_t count)
{
	return generic_write_sync(iocb, count);
}

__rust_helper void rust_helper_sb_start_pagefault(struct super_block *sb)
{
	sb_start_pagefault(sb);
}

__rust_helper void rust_helper_sb_end_pagefault(struct super_block *sb)
{
	sb_end_pagefault(sb);
}

__rust_helper vm_fault_t rust_helper_vmf_fs_error(int err)
{
	return vmf_fs_error(err);
}

__rust_helper bool rust_helper_is_shared_maywrite(const vma_flags_t *flags)
{
	return is_shared_maywrite(flags);
}

__rust_helper void rust_helper_file_start_write(struct file *file)
{
	file_start_write(file);
}

__rust_helper void rust_helper_file_end_write(struct file *file)
{
	file_end_write(file);
}

__rust_helper struct folio *rust_helper_filemap_get_folio(struct address_space *mapping,
							  pgoff_t index)
{
	return filemap_get_folio(mapping, index);
}

__rust_helper bool rust_helper_folio_test_uptodate(const struct folio *folio)
{
	return folio_test_uptodate(folio);
}

__rust_helper loff_t rust_helper_folio_pos(const struct folio *folio)
{
	return folio_pos(folio);
}

__rust_helper size_t rust_helper_folio_size(const struct folio *folio)
{
	return folio_size(folio);
}

__rust_helper void rust_helper_memcpy_from_folio(char *to, struct folio *folio, size_t offset,
						 size_t len)
{
	memcpy_from_folio(to, folio, offset, len);
}

__rust_helper void rust_helper_folio_put(struct folio *folio)
{
	folio_put(folio);
}

__rust_helper bool rust_helper_mem_cgroup_shrink_is_root(struct shrink_control *sc)
{
	return mem_cgroup_shrink_is_root(sc);
}

__rust_helper bool rust_helper_fileattr_has_fsx(const struct file_kattr *fa)
{
	return fileattr_has_fsx(fa);
}
