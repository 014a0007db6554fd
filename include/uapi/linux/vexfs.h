/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * VexFS: vector collections and k-nearest-neighbour search.
 *
 * A collection is a regular file of a VexFS file system that was turned into
 * one with VEXFS_IOC_CREATE. Its vectors are inserted, deleted and searched
 * with the ioctls below, issued on a file descriptor of the collection (open
 * for writing for the ioctls that change it).
 *
 * Every argument structure starts with a version (VEXFS_UAPI_VERSION) and
 * a size-checked layout: fields are naturally aligned, padding is explicit
 * and must be zero, and so must every reserved field and unknown flag bit
 * (the kernel fails the call with EINVAL otherwise). Buffers are passed as
 * __u64 user addresses, so the layout is the same for 32-bit and 64-bit
 * processes. Floating-point values cross the interface as IEEE-754 binary32
 * bit patterns in __u32 fields: the kernel converts them with integer code.
 */
#ifndef _UAPI_LINUX_VEXFS_H
#define _UAPI_LINUX_VEXFS_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define VEXFS_UAPI_VERSION	1

/* Limits. */
#define VEXFS_MAX_DIM		4096	/* elements per vector */
#define VEXFS_MAX_K		4096	/* results per search */
#define VEXFS_MAX_BATCH		65536	/* vectors per insert, delete, get, batch search */
#define VEXFS_MAX_RESULTS	(1U << 20)	/* results of one batch search */
#define VEXFS_MAX_EF		65536	/* HNSW candidate list size */
#define VEXFS_MAX_FILTER_IDS	(1U << 20)	/* ids of a filter's allow-list */
#define VEXFS_ID_MAX		(~(__u64)0 - 1)	/* largest valid vector id */

/* Element types (vexfs_collection_params.elem_type). */
#define VEXFS_ELEM_F32		1	/* IEEE-754 binary32 bit patterns */
#define VEXFS_ELEM_I8		2	/* signed 8-bit integers */

/* Distance metrics (vexfs_collection_params.metric). */
#define VEXFS_METRIC_L2		1	/* squared Euclidean distance */
#define VEXFS_METRIC_IP		2	/* negated inner product */
#define VEXFS_METRIC_COSINE	3	/* 1 - cosine similarity */

/**
 * struct vexfs_collection_params - parameters of a collection
 * @version: VEXFS_UAPI_VERSION
 * @dim: number of elements of each vector, 1..VEXFS_MAX_DIM
 * @elem_type: VEXFS_ELEM_*
 * @metric: VEXFS_METRIC_*
 * @hnsw_m: HNSW links per node and layer (0: default 16; 2..64)
 * @hnsw_ef_construction: HNSW candidate list size while inserting
 *	(0: default 200; @hnsw_m..VEXFS_MAX_EF)
 * @flags: must be zero
 * @reserved: must be zero
 *
 * VEXFS_IOC_CREATE takes it to turn an empty regular file into a collection;
 * VEXFS_IOC_STATS returns it inside struct vexfs_stats.
 */
struct vexfs_collection_params {
	__u32 version;
	__u32 dim;
	__u32 elem_type;
	__u32 metric;
	__u32 hnsw_m;
	__u32 hnsw_ef_construction;
	__u32 flags;
	__u32 reserved[9];
};

/**
 * struct vexfs_insert - insert a batch of vectors
 * @version: VEXFS_UAPI_VERSION
 * @count: number of vectors, 1..VEXFS_MAX_BATCH
 * @flags: VEXFS_INSERT_UPSERT or zero
 * @__pad: must be zero
 * @ids: user address of @count __u64 ids, each at most VEXFS_ID_MAX, distinct,
 *	and not already in the collection (EEXIST otherwise) unless
 *	VEXFS_INSERT_UPSERT is set: then the vector of an id already present is
 *	replaced
 * @vectors: user address of @count * dim elements of the collection's type
 *	(__u32 binary32 patterns for VEXFS_ELEM_F32, __s8 for VEXFS_ELEM_I8);
 *	NaN and infinities are refused with EINVAL
 * @reserved: must be zero
 *
 * Either the whole batch is inserted (replacing, with VEXFS_INSERT_UPSERT, the
 * vectors of the ids already present), or none of it.
 */
struct vexfs_insert {
	__u32 version;
	__u32 count;
	__u32 flags;
	__u32 __pad;
	__u64 ids;
	__u64 vectors;
	__u64 reserved[4];
};

/**
 * struct vexfs_delete - delete vectors by id
 * @version: VEXFS_UAPI_VERSION
 * @count: number of ids, 1..VEXFS_MAX_BATCH
 * @ids: user address of @count __u64 ids
 * @deleted: out: how many of the ids were in the collection and are now gone
 * @__pad: must be zero
 * @reserved: must be zero
 */
struct vexfs_delete {
	__u32 version;
	__u32 count;
	__u64 ids;
	__u32 deleted;
	__u32 __pad;
	__u64 reserved[4];
};

/* vexfs_insert.flags */
#define VEXFS_INSERT_UPSERT	(1U << 0)	/* replace the vectors of present ids */

/* vexfs_search.flags */
#define VEXFS_SEARCH_EXACT	(1U << 0)	/* scan every vector, no index */
#define VEXFS_SEARCH_STATS	(1U << 1)	/* fill in vexfs_search.stats */
#define VEXFS_SEARCH_FILTER	(1U << 2)	/* only what vexfs_search.filter admits */

/* vexfs_filter.flags */
#define VEXFS_FILTER_RANGE	(1U << 0)	/* ids from @id_min to @id_max */
#define VEXFS_FILTER_IDS	(1U << 1)	/* ids in the list at @ids */

/**
 * struct vexfs_filter - which vectors a search may return (VEXFS_SEARCH_FILTER)
 * @version: VEXFS_UAPI_VERSION
 * @flags: VEXFS_FILTER_*, at least one; with both, an id must pass both
 * @id_min: with VEXFS_FILTER_RANGE, the smallest id admitted; zero otherwise
 * @id_max: with VEXFS_FILTER_RANGE, the largest id admitted (at least
 *	@id_min); zero otherwise
 * @ids: with VEXFS_FILTER_IDS, user address of @count __u64 ids in any
 *	order (ids not in the collection and repeats are ignored); zero
 *	otherwise
 * @count: with VEXFS_FILTER_IDS, 1..VEXFS_MAX_FILTER_IDS (E2BIG above);
 *	zero otherwise
 * @__pad: must be zero
 * @reserved: must be zero
 *
 * A filtered search returns the k nearest of the vectors the filter admits
 * (fewer if it admits fewer). The HNSW search traverses the whole graph but
 * keeps only admitted vectors in its candidate list; when the filter admits
 * so few vectors that computing the distance of each costs less (about
 * a^2 <= 16 * ef * n, for a admitted of n), the kernel does that instead,
 * and the results are then exact. VEXFS_SEARCH_EXACT scans what the filter
 * admits.
 */
struct vexfs_filter {
	__u32 version;
	__u32 flags;
	__u64 id_min;
	__u64 id_max;
	__u64 ids;
	__u32 count;
	__u32 __pad;
	__u64 reserved[3];
};

/**
 * struct vexfs_search_stats - what one search did (VEXFS_SEARCH_STATS)
 * @distances: distances computed while searching (HNSW: on the traversal
 *	representation; exact search: one per vector scanned)
 * @rescored: exact distances computed for the final ranking
 * @expanded: HNSW nodes whose links were followed
 * @nanoseconds: time spent in the search itself, in the kernel
 *	(CLOCK_MONOTONIC), from the converted query to the ranked results
 * @admitted: vectors the search could return: the live ones, or those its
 *	filter admits (counted for an allow-list, estimated for an id range)
 * @flags: VEXFS_STATS_SCANNED if the search considered every admitted
 *	vector, so that its results are exact (VEXFS_SEARCH_EXACT, or a filter
 *	admitting few enough vectors, see Documentation/filesystems/vexfs.rst)
 * @__pad: zero
 * @passed: HNSW neighbours passed over on their sign codes alone, without a
 *	distance (cosine collections of at least 256 elements)
 * @reserved: zero
 *
 * The counters help to choose ef: the cost of a search grows with
 * @distances. @nanoseconds leaves out the system call and the copies.
 * Kernels before @admitted leave it and @flags zero; kernels before @passed
 * leave it zero.
 */
struct vexfs_search_stats {
	__u64 distances;
	__u64 rescored;
	__u64 expanded;
	__u64 nanoseconds;
	__u64 admitted;
	__u32 flags;
	__u32 __pad;
	__u64 passed;
	__u64 reserved;
};

/* vexfs_search_stats.flags */
#define VEXFS_STATS_SCANNED	(1U << 0)	/* every admitted vector considered */

/**
 * struct vexfs_search - k-nearest-neighbour search
 * @version: VEXFS_UAPI_VERSION
 * @k: number of neighbours wanted, 1..VEXFS_MAX_K
 * @ef: HNSW candidate list size (0: max(k, 64)); ignored for exact search
 * @flags: VEXFS_SEARCH_*
 * @query: user address of one vector (dim elements of the collection's type)
 * @ids: user address of room for @k __u64: the neighbours' ids, nearest first
 * @distances: user address of room for @k __u32: their distances, as
 *	binary32 bit patterns (0 to skip)
 * @count: out: number of results written (less than @k if the collection
 *	holds, or the filter admits, fewer vectors)
 * @__pad: must be zero
 * @stats: with VEXFS_SEARCH_STATS, user address of a struct
 *	vexfs_search_stats the kernel fills in; zero otherwise
 * @filter: with VEXFS_SEARCH_FILTER, user address of a struct vexfs_filter;
 *	zero otherwise
 * @reserved: must be zero
 */
struct vexfs_search {
	__u32 version;
	__u32 k;
	__u32 ef;
	__u32 flags;
	__u64 query;
	__u64 ids;
	__u64 distances;
	__u32 count;
	__u32 __pad;
	__u64 stats;
	__u64 filter;
	__u64 reserved[2];
};

/**
 * struct vexfs_search_batch - k-nearest-neighbour search for many queries
 * @version: VEXFS_UAPI_VERSION
 * @k: neighbours wanted per query, 1..VEXFS_MAX_K
 * @ef: as in struct vexfs_search
 * @flags: VEXFS_SEARCH_EXACT, VEXFS_SEARCH_FILTER
 * @nq: number of queries, 1..VEXFS_MAX_BATCH, with @nq * @k at most
 *	VEXFS_MAX_RESULTS (E2BIG otherwise)
 * @__pad: must be zero
 * @queries: user address of @nq vectors (@nq * dim elements of the
 *	collection's type)
 * @ids: user address of room for @nq * @k __u64: the neighbours of query i,
 *	nearest first, from index i * @k
 * @distances: user address of room for @nq * @k __u32 (binary32 bit
 *	patterns), laid out as @ids, or 0 to skip
 * @counts: user address of room for @nq __u32: the number of results of
 *	each query (less than @k only if the collection holds, or the filter
 *	admits, fewer vectors)
 * @filter: with VEXFS_SEARCH_FILTER, user address of a struct vexfs_filter
 *	that applies to every query; zero otherwise
 * @reserved: must be zero
 *
 * One call does what @nq VEXFS_IOC_SEARCH calls would, with the same
 * results; slots past a query's count are left as they were.
 */
struct vexfs_search_batch {
	__u32 version;
	__u32 k;
	__u32 ef;
	__u32 flags;
	__u32 nq;
	__u32 __pad;
	__u64 queries;
	__u64 ids;
	__u64 distances;
	__u64 counts;
	__u64 filter;
	__u64 reserved[2];
};

/**
 * struct vexfs_get - read vectors by id
 * @version: VEXFS_UAPI_VERSION
 * @count: number of ids, 1..VEXFS_MAX_BATCH
 * @ids: user address of @count __u64 ids
 * @vectors: user address of room for @count * dim elements of the
 *	collection's type: the vectors of @ids, in their order, bit for bit as
 *	they were inserted
 * @reserved: must be zero
 *
 * Fails with ENOENT if an id is not in the collection (@vectors is then
 * unspecified), and with E2BIG if the vectors exceed 32 MiB.
 */
struct vexfs_get {
	__u32 version;
	__u32 count;
	__u64 ids;
	__u64 vectors;
	__u64 reserved[5];
};

/* vexfs_build_index.flags */
#define VEXFS_BUILD_COMPACT	(1U << 0)	/* also drop deleted records from the file */

/**
 * struct vexfs_build_index - (re)build the HNSW index of a collection
 * @version: VEXFS_UAPI_VERSION
 * @flags: VEXFS_BUILD_*
 * @reserved: must be zero
 */
struct vexfs_build_index {
	__u32 version;
	__u32 flags;
	__u64 reserved[4];
};

/* vexfs_stats.index_state */
#define VEXFS_INDEX_NONE	0	/* not loaded since mount: the first use loads it */
#define VEXFS_INDEX_READY	1	/* built and up to date */

/* vexfs_stats.index_flags */
#define VEXFS_INDEX_RESTORED	(1U << 0)	/* loaded from its saved copy */
#define VEXFS_INDEX_SAVED	(1U << 1)	/* the saved copy is up to date */

/**
 * struct vexfs_stats - state of a collection
 * @version: in: VEXFS_UAPI_VERSION
 * @index_state: out: VEXFS_INDEX_*
 * @params: out: the parameters the collection was created with
 * @count: out: live vectors
 * @deleted: out: deleted records still in the file or the index
 * @file_bytes: out: size of the collection file
 * @index_bytes: out: kernel memory used by the index
 * @saved_bytes: out: size of the index saved in the collection file (0: none)
 * @load_nanoseconds: out: how long the last load of the index took (restored
 *	or rebuilt; 0 while it is not loaded)
 * @index_flags: out: VEXFS_INDEX_RESTORED, VEXFS_INDEX_SAVED
 * @__pad: must be zero
 * @mount_index_bytes: out: kernel memory used by the indexes of all collections
 *	of the file system, which share its index budget (mount option
 *	index_budget=); must be zero on input
 *
 * Kernels before @saved_bytes leave it and the fields after it zero; kernels
 * before @mount_index_bytes leave that zero.
 */
struct vexfs_stats {
	__u32 version;
	__u32 index_state;
	struct vexfs_collection_params params;
	__u64 count;
	__u64 deleted;
	__u64 file_bytes;
	__u64 index_bytes;
	__u64 saved_bytes;
	__u64 load_nanoseconds;
	__u32 index_flags;
	__u32 __pad;
	__u64 mount_index_bytes;
};

#define VEXFS_IOC_MAGIC		0xBE

#define VEXFS_IOC_CREATE	_IOW(VEXFS_IOC_MAGIC, 1, struct vexfs_collection_params)
#define VEXFS_IOC_INSERT	_IOW(VEXFS_IOC_MAGIC, 2, struct vexfs_insert)
#define VEXFS_IOC_DELETE	_IOWR(VEXFS_IOC_MAGIC, 3, struct vexfs_delete)
#define VEXFS_IOC_SEARCH	_IOWR(VEXFS_IOC_MAGIC, 4, struct vexfs_search)
#define VEXFS_IOC_BUILD_INDEX	_IOW(VEXFS_IOC_MAGIC, 5, struct vexfs_build_index)
#define VEXFS_IOC_STATS		_IOWR(VEXFS_IOC_MAGIC, 6, struct vexfs_stats)
#define VEXFS_IOC_SEARCH_BATCH	_IOW(VEXFS_IOC_MAGIC, 7, struct vexfs_search_batch)
#define VEXFS_IOC_GET		_IOW(VEXFS_IOC_MAGIC, 8, struct vexfs_get)

#endif /* _UAPI_LINUX_VEXFS_H */
