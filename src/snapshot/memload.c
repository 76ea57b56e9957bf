/*
 * Loading-set restores: RAM comes back while the guest already runs, the
 * pages it touched first last time first. Two mechanisms:
 *
 * `loadset` (the default): RAM is the lazy MAP_PRIVATE mapping of the
 * memory file. The loader thread asks for the loading set's runs to be read
 * ahead, maps them in recorded order (MADV_POPULATE_READ), then every other
 * data extent. It only maps page-cache pages of the file, so nothing can
 * race with the guest. Without a loading set it records one by sampling
 * /proc/self/pagemap (lsrec.c).
 *
 * `loadset-uffd`: RAM stays the memfd, registered with userfaultfd for
 * MISSING faults. Every page is installed atomically (UFFDIO_COPY or, for a
 * hole of the memory file, UFFDIO_ZEROPAGE), so the guest never sees a page
 * half written, or zero where the snapshot has data. A claim bit per page
 * keeps the two installers from installing one twice:
 *   - the fault thread serves a page the guest (or KVM, or a device) touches
 *     before it is there: a cluster of pages read from the memory file;
 *   - the loader thread first streams the loading set's stored pages with
 *     sequential reads, each 1 MiB chunk CRC-checked before it is installed,
 *     then fills every other data page of the memory file in address order.
 * When every data page is in, the range is unregistered: RAM is a plain
 * memfd again, exactly as after an eager restore. Without a loading set the
 * fault thread records the order of its faults. Without userfaultfd this
 * mode falls back to the first.
 */
#define _GNU_SOURCE
#include "snapshot/memload.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/log.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

/* --- page claims --- */

static bool claim(struct memload *m, uint64_t p)
{
	uint64_t bit = 1ULL << (p & 63);
	return !(__atomic_fetch_or(&m->claimed[p / 64], bit, __ATOMIC_ACQ_REL) & bit);
}

static bool is_claimed(const struct memload *m, uint64_t p)
{
	return __atomic_load_n(&m->claimed[p / 64], __ATOMIC_ACQUIRE) >> (p & 63) & 1;
}

static bool is_done(const struct memload *m, uint64_t p)
{
	return __atomic_load_n(&m->done[p / 64], __ATOMIC_ACQUIRE) >> (p & 63) & 1;
}

static void set_done(struct memload *m, uint64_t p, uint64_t n)
{
	for (uint64_t i = p; i < p + n; i++)
		__atomic_fetch_or(&m->done[i / 64], 1ULL << (i & 63), __ATOMIC_RELEASE);
}

/* --- installing pages (userfaultfd) --- */

static void uffd_wake(struct memload *m, uint64_t p, uint64_t n)
{
	struct uffdio_range r = { .start = (uint64_t)(uintptr_t)(m->base + p * SNAP_PAGE),
				  .len = n * SNAP_PAGE };
	ioctl(m->uffd, UFFDIO_WAKE, &r);
}

/* A fatal install error: the guest would wait forever for these pages. */
static void install_failed(struct memload *m, const char *what, int e)
{
	pr_err("snapshot: memload: %s failed: %s; stopping the VM", what, strerror(e));
	vm_request_exit(m->vm, VM_EXIT_FAILURE);
}

/* Install claimed pages [p, p+n) from @src (UFFDIO_COPY), or zeros. */
static int install(struct memload *m, uint64_t p, uint64_t n, const uint8_t *src)
{
	uint64_t off = 0;
	while (off < n) {
		uint64_t dst = (uint64_t)(uintptr_t)(m->base + (p + off) * SNAP_PAGE);
		int64_t did;
		int r;
		if (src) {
			struct uffdio_copy c = { .dst = dst, .src = (uint64_t)(uintptr_t)(src + off * SNAP_PAGE),
						 .len = (n - off) * SNAP_PAGE };
			r = ioctl(m->uffd, UFFDIO_COPY, &c);
			did = c.copy;
		} else {
			struct uffdio_zeropage z = { .range = { .start = dst, .len = (n - off) * SNAP_PAGE } };
			r = ioctl(m->uffd, UFFDIO_ZEROPAGE, &z);
			did = z.zeropage;
		}
		if (r == 0) {
			off = n;
			break;
		}
		int e = errno;
		if (did > 0)
			off += (uint64_t)did / SNAP_PAGE;
		if (e == EAGAIN)
			continue;
		if (e == EEXIST) {
			off++; /* already there (installed and faulted in): keep it */
			continue;
		}
		if (e == ENOENT || e == ESRCH)
			return -e; /* unregistered, or the process is going away */
		install_failed(m, src ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE", e);
		return -e;
	}
	set_done(m, p, n);
	return 0;
}

/*
 * Claim and install what is unclaimed of [p, p+n), whose contents are at
 * @src (NULL: zeros). Returns the pages this call installed.
 */
static uint64_t install_unclaimed(struct memload *m, uint64_t p, uint64_t n, const uint8_t *src)
{
	uint64_t got = 0;
	for (uint64_t i = 0; i < n;) {
		if (!claim(m, p + i)) {
			i++; /* someone else's */
			continue;
		}
		uint64_t a = i++;
		while (i < n && claim(m, p + i))
			i++;
		if (install(m, p + a, i - a, src ? src + a * SNAP_PAGE : NULL))
			break;
		got += i - a;
	}
	return got;
}

/* Zeros for what is a hole of the memory file in [p, p+n), one call per hole. */
static uint64_t install_holes(struct memload *m, uint64_t p, uint64_t n)
{
	uint64_t got = 0;
	for (uint64_t i = 0; i < n;) {
		while (i < n && pageset_test(&m->data, p + i))
			i++; /* data: never zeros */
		uint64_t a = i;
		while (i < n && !pageset_test(&m->data, p + i))
			i++;
		if (i > a)
			got += install_unclaimed(m, p + a, i - a, NULL);
	}
	return got;
}

/* --- the fault thread (userfaultfd) --- */

/* Serve one missing page: a cluster from the memory file, or zeros in a hole. */
static void serve_fault(struct memload *m, uint64_t page)
{
	if (page >= m->npages)
		return;
	if (is_claimed(m, page)) {
		/* Installed and gone again (a balloon discard punched it): zeros, as
		 * for any discarded page. Being installed: the installer wakes it. */
		if (is_done(m, page) && install(m, page, 1, NULL) == 0)
			return;
		uffd_wake(m, page, 1);
		return;
	}
	bool data = pageset_test(&m->data, page);
	uint64_t end = (page / ML_CLUSTER + 1) * ML_CLUSTER, n = 0;
	if (end > m->npages)
		end = m->npages;
	while (page + n < end && pageset_test(&m->data, page + n) == data && claim(m, page + n))
		n++;
	if (n == 0) {
		uffd_wake(m, page, 1); /* claimed by the loader just now */
		return;
	}
	if (data && ml_read_full(m->mem_fd, m->fault_buf, n * SNAP_PAGE, page * SNAP_PAGE)) {
		install_failed(m, "reading the memory file", errno);
		return;
	}
	if (install(m, page, n, data ? m->fault_buf : NULL))
		return;
	m->faults++;
	m->fault_pages += n;
	ml_record(m, page, n, !data);
}

static void *fault_main(void *arg)
{
	struct memload *m = arg;
	struct uffd_msg msg[32];

	pthread_setname_np(pthread_self(), "memload-fault");
	for (;;) {
		struct pollfd pfd[2] = { { .fd = m->uffd, .events = POLLIN },
					 { .fd = m->stop_fd, .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		ssize_t r = read(m->uffd, msg, sizeof(msg));
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			break;
		}
		for (size_t i = 0; i < (size_t)r / sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				serve_fault(m, (msg[i].arg.pagefault.address -
						(uint64_t)(uintptr_t)m->base) / SNAP_PAGE);
	}
	return NULL;
}

/* --- the loader thread --- */

/* Stream the loading set: chunk by chunk, each checked, then installed. */
static void load_loadset(struct memload *m)
{
	const struct loadset *ls = &m->ls;
	uint64_t per = (uint64_t)LOADSET_CHUNK_PAGES * ML_LS_READ;
	uint8_t *buf = malloc(per * SNAP_PAGE);
	uint32_t ri = 0;   /* run being installed */
	uint64_t roff = 0; /* pages of it already installed */

	if (!buf)
		return;
	posix_fadvise(m->ls_fd, (off_t)ls->data_off, 0, POSIX_FADV_SEQUENTIAL);
	for (uint64_t k = 0; k < ls->data_pages && !ml_stopping(m);) {
		uint64_t n = ls->data_pages - k < per ? ls->data_pages - k : per;
		if (ml_read_full(m->ls_fd, buf, n * SNAP_PAGE, ls->data_off + k * SNAP_PAGE)) {
			pr_warn("snapshot: loading set unreadable (%s); the rest comes from the memory "
				"file", strerror(errno));
			break;
		}
		bool bad = false;
		for (uint64_t c = 0; c < n; c += LOADSET_CHUNK_PAGES) {
			uint64_t len = n - c < LOADSET_CHUNK_PAGES ? n - c : LOADSET_CHUNK_PAGES;
			if (crc32c(0, buf + c * SNAP_PAGE, len * SNAP_PAGE) !=
			    ls->chunk_crc[(k + c) / LOADSET_CHUNK_PAGES])
				bad = true;
		}
		if (bad) {
			pr_warn("snapshot: loading set chunk at page %llu is corrupt (checksum); the "
				"rest comes from the memory file", (unsigned long long)k);
			break;
		}
		/* Hand the pages to their runs, in index order (zero runs hold none). */
		for (uint64_t used = 0; used < n || (ri < ls->nr_runs && ls->runs[ri].zero);) {
			if (ri >= ls->nr_runs)
				break;
			const struct loadset_run *run = &ls->runs[ri];
			if (run->zero) {
				m->ls_pages += install_holes(m, run->first, run->count);
				ri++;
				continue;
			}
			if (used == n)
				break;
			uint64_t take = run->count - roff < n - used ? run->count - roff : n - used;
			m->ls_pages += install_unclaimed(m, run->first + roff, take, buf + used * SNAP_PAGE);
			used += take;
			roff += take;
			if (roff == run->count) {
				ri++;
				roff = 0;
			}
		}
		k += n;
	}
	for (; ri < ls->nr_runs && !ml_stopping(m); ri++) /* holes after the last page */
		if (ls->runs[ri].zero)
			m->ls_pages += install_holes(m, ls->runs[ri].first, ls->runs[ri].count);
	free(buf);
}

/* Every data page nobody installed yet, in address order. */
static void fill_rest(struct memload *m)
{
	uint8_t *buf = malloc((size_t)ML_FILL_BLOCK * SNAP_PAGE);
	uint64_t pos = 0, cnt;

	if (!buf)
		return;
	posix_fadvise(m->mem_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (!ml_stopping(m) && pageset_next_run(&m->data, &pos, &cnt)) {
		for (uint64_t p = pos; p < pos + cnt && !ml_stopping(m);) {
			uint64_t n = pos + cnt - p < ML_FILL_BLOCK ? pos + cnt - p : ML_FILL_BLOCK;
			uint64_t a = 0, b = n;
			while (a < n && is_claimed(m, p + a))
				a++;
			while (b > a && is_claimed(m, p + b - 1))
				b--;
			if (a < b) {
				if (ml_read_full(m->mem_fd, buf, (b - a) * SNAP_PAGE, (p + a) * SNAP_PAGE)) {
					install_failed(m, "reading the memory file", errno);
					free(buf);
					return;
				}
				m->fill_pages += install_unclaimed(m, p + a, b - a, buf);
			}
			p += n;
		}
		pos += cnt;
	}
	free(buf);
}

/* All data pages in: unregister, so RAM is a plain memfd again. */
static void complete(struct memload *m)
{
	uint64_t pos = 0, cnt;
	while (!ml_stopping(m) && pageset_next_run(&m->data, &pos, &cnt)) {
		for (uint64_t p = pos; p < pos + cnt; p++)
			while (!is_done(m, p) && !ml_stopping(m))
				sched_yield(); /* the fault thread is installing it right now */
		pos += cnt;
	}
	if (ml_stopping(m))
		return;
	struct uffdio_range r = { .start = (uint64_t)(uintptr_t)m->base,
				  .len = m->npages * SNAP_PAGE };
	if (ioctl(m->uffd, UFFDIO_UNREGISTER, &r) < 0)
		pr_warn("snapshot: memload: UFFDIO_UNREGISTER: %s", strerror(errno));
	uint64_t one = 1;
	if (write(m->stop_fd, &one, sizeof(one)) < 0)
		pr_debug("snapshot: memload: stop: %s", strerror(errno));
}

/*
 * Userfaultfd with an index-only loading set: its pages in recorded order,
 * read from the memory file.
 */
static void load_runs_from_memfile(struct memload *m)
{
	uint8_t *buf = malloc((size_t)ML_FILL_BLOCK * SNAP_PAGE);
	if (!buf)
		return;
	for (uint32_t i = 0; i < m->ls.nr_runs && !ml_finishing(m); i++) {
		const struct loadset_run *run = &m->ls.runs[i];
		for (uint64_t p = run->first; p < run->first + run->count;) {
			uint64_t n = run->first + run->count - p;
			n = n < ML_FILL_BLOCK ? n : ML_FILL_BLOCK;
			if (run->zero) {
				m->ls_pages += install_holes(m, p, n);
			} else if (ml_read_full(m->mem_fd, buf, n * SNAP_PAGE, p * SNAP_PAGE) == 0) {
				m->ls_pages += install_unclaimed(m, p, n, buf);
			}
			p += n;
		}
	}
	free(buf);
}

/*
 * The lazy mapping: the loading set's pages in recorded order (read ahead
 * all at once, then mapped run by run with MADV_POPULATE_READ), then every
 * other data page. Page-cache pages are mapped, never copied; a page the
 * guest touches first simply faults in as with a lazy restore, so nothing
 * can race. Only the index is used; the memory file is read.
 */
/* cachestat(2), Linux 6.5: page-cache residency of a file range without a
 * walk of the mapping. */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct ml_cachestat_range {
	uint64_t off, len;
};
struct ml_cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/*
 * How many of the memory file's data pages are in the page cache. One
 * cachestat call per data extent (0.2 ms for a cached GiB); on older kernels
 * mincore of the mapping, which looks every page up and costs the guest a
 * host CPU for ~10 ms per GiB.
 */
static uint64_t cached_data_pages(struct memload *m)
{
	uint64_t cached = 0, pos = 0, cnt;
	unsigned char *vec = NULL;
	bool use_mincore = false;

	while (pageset_next_run(&m->data, &pos, &cnt)) {
		struct ml_cachestat_range r = { pos * SNAP_PAGE, cnt * SNAP_PAGE };
		struct ml_cachestat cs;
		if (!use_mincore &&
		    syscall(__NR_cachestat, m->vm->mem.file_fd, &r, &cs, 0) == 0) {
			cached += cs.nr_cache;
		} else {
			use_mincore = true;
			if (!vec && !(vec = malloc(m->npages)))
				break;
			if (mincore(m->base + pos * SNAP_PAGE, cnt * SNAP_PAGE, vec) == 0)
				for (uint64_t i = 0; i < cnt; i++)
					cached += vec[i] & 1;
		}
		pos += cnt;
	}
	free(vec);
	return cached;
}

/*
 * The lazy mapping: the loading set's pages in recorded order (read ahead
 * all at once, then mapped run by run with MADV_POPULATE_READ), then every
 * other data page. Page-cache pages are mapped, never copied; a page the
 * guest touches first simply faults in as with a lazy restore, so nothing
 * can race. Only the index is used; the memory file is read.
 */
static void prefetch_mapped(struct memload *m)
{
	/* All in the page cache already: mapping ahead only competes with the
	 * guest for the CPU (bench/snapshot, warm), the guest's faults are
	 * as cheap without it. */
	uint64_t data = pageset_count(&m->data);
	if (cached_data_pages(m) >= data - data / 16) {
		m->t_ls = snap_now_ms();
		pr_info("snapshot: loading-set restore: the memory file is cached; nothing to "
			"prefetch");
		return;
	}
	for (uint32_t i = 0; i < m->ls.nr_runs && !ml_finishing(m); i++)
		if (!m->ls.runs[i].zero)
			posix_fadvise(m->vm->mem.file_fd, (off_t)(m->ls.runs[i].first * SNAP_PAGE),
				      (off_t)((uint64_t)m->ls.runs[i].count * SNAP_PAGE),
				      POSIX_FADV_WILLNEED);
	for (uint32_t i = 0; i < m->ls.nr_runs && !ml_finishing(m); i++) {
		const struct loadset_run *run = &m->ls.runs[i];
		if (!run->zero && madvise(m->base + run->first * SNAP_PAGE,
					  (size_t)run->count * SNAP_PAGE, MADV_POPULATE_READ) == 0)
			m->ls_pages += run->count;
	}
	m->t_ls = snap_now_ms();
	uint64_t pos = 0, cnt;
	while (!ml_finishing(m) && pageset_next_run(&m->data, &pos, &cnt)) {
		for (uint64_t p = pos; p < pos + cnt && !ml_finishing(m); p += ML_FILL_BLOCK) {
			uint64_t n = pos + cnt - p < ML_FILL_BLOCK ? pos + cnt - p : ML_FILL_BLOCK;
			if (madvise(m->base + p * SNAP_PAGE, n * SNAP_PAGE, MADV_POPULATE_READ) == 0)
				m->fill_pages += n;
		}
		pos += cnt;
	}
}

static void *loader_main(void *arg)
{
	struct memload *m = arg;

	pthread_setname_np(pthread_self(), "memload");
	pthread_mutex_lock(&m->lock);
	while (!m->go && !ml_finishing(m))
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
	if (ml_stopping(m))
		return NULL; /* the restore failed before the VM was built */
	if (m->uffd < 0) {
		if (m->have_ls) {
			prefetch_mapped(m);
		} else {
			ml_record_by_pagemap(m);
			ml_record_finish(m, m->vm->mem.file_fd, false, false);
		}
		m->t_fill = snap_now_ms();
		if (m->have_ls)
			pr_info("snapshot: loading-set restore: %llu MiB of the loading set mapped by "
				"%.0f ms, %llu MiB more by %.0f ms",
				(unsigned long long)(m->ls_pages * SNAP_PAGE >> 20), m->t_ls - m->t0,
				(unsigned long long)(m->fill_pages * SNAP_PAGE >> 20),
				m->t_fill - m->t0);
		return NULL;
	}
	if (m->have_ls && (m->ls.flags & LOADSET_F_DATA))
		load_loadset(m);
	else if (m->have_ls)
		load_runs_from_memfile(m);
	else
		ml_record_finish(m, m->mem_fd, true, true);
	m->t_ls = snap_now_ms();
	fill_rest(m);
	complete(m);
	m->t_fill = snap_now_ms();
	pr_info("snapshot: loading-set restore (userfaultfd): %llu MiB from the loading set by "
		"%.0f ms, %llu MiB filled by %.0f ms, %llu faults served (%llu MiB)",
		(unsigned long long)(m->ls_pages * SNAP_PAGE >> 20), m->t_ls - m->t0,
		(unsigned long long)(m->fill_pages * SNAP_PAGE >> 20), m->t_fill - m->t0,
		(unsigned long long)m->faults, (unsigned long long)(m->fault_pages * SNAP_PAGE >> 20));
	return NULL;
}

/* --- start and stop --- */

static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 || (errno != EPERM && errno != EACCES))
		return fd >= 0 ? fd : -errno;
	/* Without CAP_SYS_PTRACE: the device node (Linux 5.11), if we may open it. */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -EPERM;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	int e = errno;
	close(dev);
	return fd >= 0 ? fd : -e;
}

/* Register RAM for missing faults; -errno says why it cannot be. */
static int uffd_setup(struct memload *m, const char **why)
{
	if (getenv("POCKETVM_NO_USERFAULTFD")) {
		*why = "POCKETVM_NO_USERFAULTFD is set";
		return -ENOSYS;
	}
	int fd = uffd_open();
	if (fd < 0) {
		*why = fd == -EPERM ? "not permitted (needs CAP_SYS_PTRACE or /dev/userfaultfd)" :
				      "not supported by this kernel";
		return fd;
	}
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)m->base, .len = m->npages * SNAP_PAGE },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	const uint64_t need = 1ULL << _UFFDIO_COPY | 1ULL << _UFFDIO_ZEROPAGE | 1ULL << _UFFDIO_WAKE;
	if (ioctl(fd, UFFDIO_API, &api) < 0 || !(api.features & UFFD_FEATURE_MISSING_SHMEM)) {
		*why = "no missing-page faults on shared memory";
		close(fd);
		return -ENOTSUP;
	}
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0 || (reg.ioctls & need) != need) {
		*why = "cannot register guest RAM";
		close(fd);
		return -ENOTSUP;
	}
	m->uffd = fd;
	return 0;
}

static void memload_free(struct memload *m)
{
	if (m->uffd >= 0)
		close(m->uffd);
	if (m->mem_fd >= 0)
		close(m->mem_fd);
	if (m->ls_fd >= 0)
		close(m->ls_fd);
	if (m->stop_fd >= 0)
		close(m->stop_fd);
	loadset_free(&m->ls);
	pageset_free(&m->data);
	free(m->claimed);
	free(m->done);
	free(m->fault_buf);
	free(m->rec);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
}

int memload_start(struct vm *vm, struct snap_image *img, bool use_uffd, char *err, size_t errlen)
{
	struct snap_runtime *rt = snap_runtime(vm);
	struct memload *m = calloc(1, sizeof(*m));
	const char *why = "";
	int r;

	if (!rt || !m) {
		free(m);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->vm = vm;
	m->base = vm->mem.base;
	m->npages = vm->mem.ram_size / SNAP_PAGE;
	m->uffd = m->mem_fd = m->ls_fd = -1;
	m->t0 = snap_now_ms();
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	snprintf(m->dir, sizeof(m->dir), "%s", img->dir);
	memcpy(m->bind.uuid, img->mem.uuid, 16);
	m->bind.gen = img->mem.gen;
	m->bind.ram_size = img->ram_size;
	m->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint64_t words = pageset_words(m->npages);
	m->claimed = calloc(words, sizeof(uint64_t));
	m->done = calloc(words, sizeof(uint64_t));
	m->fault_buf = malloc((size_t)ML_CLUSTER * SNAP_PAGE);
	if (m->stop_fd < 0 || !m->claimed || !m->done || !m->fault_buf ||
	    pageset_init(&m->data, m->npages)) {
		memload_free(m);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Where the memory file has data: everything else is zero. */
	for (off_t pos = 0; (uint64_t)pos < vm->mem.ram_size;) {
		off_t data = lseek(img->mem_fd, pos, SEEK_DATA);
		if (data < 0 || (uint64_t)data >= vm->mem.ram_size)
			break;
		off_t hole = lseek(img->mem_fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > vm->mem.ram_size)
			hole = (off_t)vm->mem.ram_size;
		uint64_t a = (uint64_t)data / SNAP_PAGE, b = ((uint64_t)hole + SNAP_PAGE - 1) / SNAP_PAGE;
		pageset_add(&m->data, a, b - a);
		pos = hole;
	}
	m->have_ls = img->have_loadset;
	m->recording = !m->have_ls;
	if (m->have_ls) {
		m->ls = img->loadset;
		m->ls_fd = img->loadset_fd;
		img->loadset = (struct loadset){ 0 };
		img->have_loadset = false;
		img->loadset_fd = -1;
	}
	if (use_uffd && uffd_setup(m, &why) == 0) {
		m->mem_fd = img->mem_fd;
		img->mem_fd = -1;
		r = pthread_create(&m->fault_thr, NULL, fault_main, m);
		m->fault_started = r == 0;
	} else {
		if (use_uffd)
			pr_info("snapshot: userfaultfd unavailable (%s): the loading set is prefetched "
				"into the lazy mapping instead", why);
		r = snap_mem_map_lazy(vm, img->mem_fd, err, errlen);
		if (!r) {
			m->mem_fd = -1; /* vm->mem.file_fd, owned by the mapping */
			img->mem_fd = -1;
		}
	}
	if (!r) {
		r = pthread_create(&m->load_thr, NULL, loader_main, m);
		m->load_started = r == 0;
		if (r)
			r = -r;
	} else if (r > 0) {
		r = -r;
	}
	if (r) {
		if (!err[0])
			snprintf(err, errlen, "cannot start the memory loader: %s", strerror(-r));
		__atomic_store_n(&m->stop, true, __ATOMIC_RELEASE);
		uint64_t one = 1;
		if (m->fault_started && write(m->stop_fd, &one, sizeof(one)) == sizeof(one))
			pthread_join(m->fault_thr, NULL);
		memload_free(m);
		return r;
	}
	rt->ml = m;
	return 0;
}

/* Join both threads; @stop: abandon the work instead of finishing it. */
static void memload_end(struct vm *vm, bool stop)
{
	struct snap_runtime *rt = vm->snap;
	struct memload *m = rt ? rt->ml : NULL;
	uint64_t one = 1;

	if (!m)
		return;
	__atomic_store_n(stop ? &m->stop : &m->finish, true, __ATOMIC_RELEASE);
	pthread_mutex_lock(&m->lock);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (m->load_started)
		pthread_join(m->load_thr, NULL);
	if (m->fault_started) {
		if (write(m->stop_fd, &one, sizeof(one)) < 0)
			pr_debug("snapshot: memload: stop: %s", strerror(errno));
		pthread_join(m->fault_thr, NULL);
	}
	if (m->uffd >= 0 && !m->t_fill) {
		struct uffdio_range r = { .start = (uint64_t)(uintptr_t)m->base,
					  .len = m->npages * SNAP_PAGE };
		ioctl(m->uffd, UFFDIO_UNREGISTER, &r);
	}
	rt->ml = NULL;
	memload_free(m);
}

void memload_go(struct vm *vm)
{
	struct memload *m = vm->snap ? vm->snap->ml : NULL;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->go = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

void memload_finish(struct vm *vm)
{
	memload_end(vm, false);
}

void memload_destroy(struct vm *vm)
{
	memload_end(vm, true);
}
