/*
 * Internals of loading-set restores (memload.c) and of recording loading
 * sets (lsrec.c). Not for use outside src/snapshot/.
 */
#ifndef POCKETVM_SNAPSHOT_MEMLOAD_H
#define POCKETVM_SNAPSHOT_MEMLOAD_H

#include "snapshot/snap_int.h"

#define ML_CLUSTER 16		      /* pages a userfaultfd fault brings in (64 KiB) */
#define ML_FILL_BLOCK 512	      /* pages per read or prefetch of the rest (2 MiB) */
#define ML_LS_READ 4		      /* loading-set chunks per read (4 MiB) */
#define ML_REC_MS 1500.0	      /* recording window after a restore */
#define ML_REC_MAX_PAGES (128u << 10) /* at most 512 MiB in a loading set */

struct memload {
	struct vm *vm;
	uint8_t *base;
	uint64_t npages;
	int uffd;	  /* -1: RAM is the lazy mapping of the memory file */
	int mem_fd;	  /* the memory file (userfaultfd: owned; else vm->mem.file_fd) */
	int ls_fd;	  /* the loading set, or -1 */
	int stop_fd;	  /* eventfd: the fault thread leaves */
	struct loadset ls;
	bool have_ls;
	char dir[PATH_MAX];
	struct loadset_bind bind;
	struct pageset data;	    /* pages inside the memory file's data extents */
	uint64_t *claimed, *done;   /* per page: someone installs it / it is installed */
	uint8_t *fault_buf;

	pthread_t fault_thr, load_thr;
	bool fault_started, load_started;
	bool finish, stop;	    /* atomics: fill now (a save waits) / tear down */
	bool go;		    /* under lock: the VM is built, the loader may start */

	/* Recording (no loading set yet): appended under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool recording;
	struct loadset_run *rec;
	uint32_t nr_rec, cap_rec;
	uint64_t rec_pages;

	/* Statistics for the log. */
	uint64_t faults, fault_pages, ls_pages, fill_pages;
	double t0, t_ls, t_fill;
};

static inline bool ml_stopping(const struct memload *m)
{
	return __atomic_load_n(&m->stop, __ATOMIC_ACQUIRE);
}

static inline bool ml_finishing(const struct memload *m)
{
	return __atomic_load_n(&m->finish, __ATOMIC_ACQUIRE) || ml_stopping(m);
}

/* pread exactly @n bytes at @off (past the end of file: zeros). 0 or -errno. */
int ml_read_full(int fd, uint8_t *buf, uint64_t n, uint64_t off);

/* Record that [p, p+n) was touched (first touch order), zero: a hole. */
void ml_record(struct memload *m, uint64_t p, uint64_t n, bool zero);

/*
 * ml_record_finish - wait until the recording window closes (@wait: the
 * fault thread records; else the record is complete), then write what was
 * recorded as the directory's loading set: with the pages' contents read
 * from @mem_fd (@with_data) or as an index only.
 */
void ml_record_finish(struct memload *m, int mem_fd, bool wait, bool with_data);

/* Record by sampling /proc/self/pagemap (RAM is the lazy mapping). */
void ml_record_by_pagemap(struct memload *m);

#endif
