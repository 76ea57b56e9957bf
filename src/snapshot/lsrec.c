/*
 * Recording loading sets: which pages a restored guest touches first, in
 * that order, for a bounded time (ML_REC_MS or ML_REC_MAX_PAGES), then
 * written as DIR/loadset (tmp file, synced, renamed) if DIR's state still
 * describes the memory the record was made against. Two recorders: the
 * userfaultfd fault thread (exact order at cluster granularity) and a
 * sampler of /proc/self/pagemap's present bits on the lazy mapping (the
 * order at 5, 10, 20, ... ms granularity; a page mapped by fault-around
 * counts as touched).
 */
#define _GNU_SOURCE
#include "snapshot/memload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

/* pread exactly @n bytes (short only at end of file: the rest zeroed). */
int ml_read_full(int fd, uint8_t *buf, uint64_t n, uint64_t off)
{
	uint64_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			memset(buf + got, 0, n - got);
			break;
		}
		got += (uint64_t)r;
	}
	return 0;
}

/* --- recording the loading set --- */

/* Append [p, p+n) to the record (merging with the last run). Lock held. */
static void rec_append(struct memload *m, uint64_t p, uint64_t n, bool zero)
{
	if (!m->recording)
		return;
	if (m->nr_rec) {
		struct loadset_run *l = &m->rec[m->nr_rec - 1];
		if (l->zero == zero && l->first + l->count == p &&
		    l->count + n <= LOADSET_MAX_RUN_PAGES) {
			l->count += (uint32_t)n;
			goto counted;
		}
	}
	if (m->nr_rec == m->cap_rec) {
		uint32_t cap = m->cap_rec ? m->cap_rec * 2 : 1024;
		void *r = cap <= LOADSET_MAX_RUNS ? realloc(m->rec, cap * sizeof(*m->rec)) : NULL;
		if (!r) {
			m->recording = false; /* keep what we have */
			pthread_cond_broadcast(&m->cond);
			return;
		}
		m->rec = r;
		m->cap_rec = cap;
	}
	m->rec[m->nr_rec++] = (struct loadset_run){ .first = p, .count = (uint32_t)n, .zero = zero };
counted:
	m->rec_pages += n;
	if (m->rec_pages >= ML_REC_MAX_PAGES) {
		m->recording = false;
		pthread_cond_broadcast(&m->cond);
	}
}

void ml_record(struct memload *m, uint64_t p, uint64_t n, bool zero)
{
	pthread_mutex_lock(&m->lock);
	rec_append(m, p, n, zero);
	pthread_mutex_unlock(&m->lock);
}

/* Does @dir's state still describe the memory the record was made against? */
static bool still_current(const struct memload *m)
{
	struct snap_memsec now = { 0 };
	bool same = !snap_read_memsec(m->dir, m->bind.ram_size, &now) &&
		    !memcmp(now.uuid, m->bind.uuid, 16) && now.gen == m->bind.gen;
	pageset_free(&now.diff);
	return same;
}

/*
 * Write the recorded runs as DIR/loadset: the data pages read from the
 * memory file in recorded order, each 1 MiB chunk's CRC, then the index;
 * synced, then renamed into place (atomic). A failure only logs.
 */
static void write_loadset(struct memload *m, const struct loadset_run *runs, uint32_t n, int mem_fd,
			  bool with_data)
{
	char tmp[PATH_MAX + 32], path[PATH_MAX + 16];
	uint64_t pages = with_data ? loadset_data_pages(runs, n) : 0;
	uint64_t off = loadset_data_offset(n, pages);
	uint32_t nchunks = loadset_chunks(pages);
	uint32_t *crc = calloc(nchunks ? nchunks : 1, sizeof(uint32_t));
	uint8_t *chunk = malloc((size_t)LOADSET_CHUNK_PAGES * SNAP_PAGE);
	struct enc e;
	int r = -ENOMEM, fd = -1;
	double t0 = snap_now_ms();

	enc_init(&e);
	snprintf(tmp, sizeof(tmp), "%s/loadset.tmp-%d", m->dir, (int)getpid());
	snprintf(path, sizeof(path), "%s/loadset", m->dir);
	if (!crc || !chunk)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	uint64_t k = 0; /* data pages assembled */
	r = 0;
	for (uint32_t i = 0; i < n && !r && with_data; i++) {
		if (runs[i].zero)
			continue;
		for (uint64_t done = 0; done < runs[i].count && !r;) {
			if (__atomic_load_n(&m->finish, __ATOMIC_ACQUIRE)) {
				r = -ECANCELED; /* a save is coming: this record is stale */
				break;
			}
			uint64_t at = k % LOADSET_CHUNK_PAGES;
			uint64_t take = runs[i].count - done;
			if (take > LOADSET_CHUNK_PAGES - at)
				take = LOADSET_CHUNK_PAGES - at;
			r = ml_read_full(mem_fd, chunk + at * SNAP_PAGE, take * SNAP_PAGE,
				      (runs[i].first + done) * SNAP_PAGE);
			done += take;
			k += take;
			if (!r && (k % LOADSET_CHUNK_PAGES == 0 || k == pages)) {
				uint64_t c = (k - 1) / LOADSET_CHUNK_PAGES, len = k - c * LOADSET_CHUNK_PAGES;
				crc[c] = crc32c(0, chunk, len * SNAP_PAGE);
				r = snap_write_all(fd, chunk, len * SNAP_PAGE,
						   (off_t)(off + c * LOADSET_CHUNK_PAGES * SNAP_PAGE));
			}
		}
	}
	uint64_t data_off = 0;
	if (!r)
		r = loadset_encode_meta(&e, &m->bind, runs, n, with_data ? crc : NULL, &data_off);
	if (!r && data_off != off)
		r = -EINVAL;
	if (!r && pages == 0 && ftruncate(fd, (off_t)off) < 0)
		r = -errno;
	if (!r)
		r = snap_write_all(fd, e.buf, e.len, 0);
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	if (!r && !still_current(m))
		r = -ESTALE;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (!r)
		snap_fsync_dir(m->dir);
out:
	if (fd >= 0)
		close(fd);
	if (r)
		unlink(tmp);
	if (r && r != -ECANCELED && r != -ESTALE)
		pr_warn("snapshot: cannot write the loading set %s: %s", path, strerror(-r));
	else if (!r)
		pr_info("snapshot: recorded a loading set of %u runs (%s%llu MiB stored; written in "
			"%.0f ms)", n, with_data ? "" : "an index only, ",
			(unsigned long long)(pages * SNAP_PAGE >> 20), snap_now_ms() - t0);
	enc_free(&e);
	free(crc);
	free(chunk);
}

void ml_record_finish(struct memload *m, int mem_fd, bool wait, bool with_data)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(ML_REC_MS * 1e6);
	ts.tv_sec += (time_t)(ns / 1000000000ULL);
	ts.tv_nsec = (long)(ns % 1000000000ULL);
	pthread_mutex_lock(&m->lock);
	while (wait && m->recording && !ml_finishing(m))
		if (pthread_cond_timedwait(&m->cond, &m->lock, &ts) == ETIMEDOUT)
			break;
	m->recording = false;
	struct loadset_run *runs = m->rec;
	uint32_t n = m->nr_rec;
	m->rec = NULL;
	m->nr_rec = m->cap_rec = 0;
	pthread_mutex_unlock(&m->lock);
	/* A save is coming: what was recorded is about to be stale. A VM that
	 * stops within the window keeps what it recorded so far. */
	if (n && !__atomic_load_n(&m->finish, __ATOMIC_ACQUIRE))
		write_loadset(m, runs, n, mem_fd, with_data);
	free(runs);
}

void ml_record_by_pagemap(struct memload *m)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	const uint64_t batch = 1 << 16;
	uint64_t *ent = malloc(batch * sizeof(uint64_t));
	struct pageset seen;
	double start = snap_now_ms(), next = 5;

	if (pm < 0 || !ent || pageset_init(&seen, m->npages)) {
		pr_warn("snapshot: cannot sample /proc/self/pagemap; no loading set is recorded");
		if (pm >= 0)
			close(pm);
		free(ent);
		return;
	}
	/* Samples at 5, 10, 20, ... ms: first-touch order at growing granularity. */
	while (m->recording && !ml_finishing(m)) {
		double now = snap_now_ms() - start;
		if (now < next) {
			/* the sampling period; a save or the VM's end cuts it short */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)((next - now) * 1e6);
			ts.tv_sec += (time_t)(ns / 1000000000ULL);
			ts.tv_nsec = (long)(ns % 1000000000ULL);
			pthread_mutex_lock(&m->lock);
			if (m->recording && !ml_finishing(m))
				pthread_cond_timedwait(&m->cond, &m->lock, &ts);
			pthread_mutex_unlock(&m->lock);
			continue;
		}
		for (uint64_t p = 0; p < m->npages; p += batch) {
			uint64_t cnt = m->npages - p < batch ? m->npages - p : batch;
			uint64_t at = (uint64_t)(uintptr_t)m->base / SNAP_PAGE + p;
			if (pread(pm, ent, cnt * 8, (off_t)(at * 8)) != (ssize_t)(cnt * 8))
				break;
			pthread_mutex_lock(&m->lock);
			for (uint64_t i = 0; i < cnt; i++)
				if (ent[i] >> 63 && !pageset_test(&seen, p + i)) {
					pageset_add(&seen, p + i, 1);
					rec_append(m, p + i, 1, !pageset_test(&m->data, p + i));
				}
			pthread_mutex_unlock(&m->lock);
		}
		next *= 2;
		if (next > ML_REC_MS)
			break;
	}
	pageset_free(&seen);
	free(ent);
	close(pm);
}


int snap_loadset_carry(const char *dir, const struct loadset_bind *from, uint64_t new_gen)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 32], why[160];
	uint8_t hdr[LOADSET_HDR_LEN];
	uint64_t meta = 0;
	uint8_t *buf = NULL;
	struct loadset ls = { 0 };
	struct enc e;
	struct stat st;
	int r = -EINVAL, fd;

	snprintf(path, sizeof(path), "%s/loadset", dir);
	snprintf(tmp, sizeof(tmp), "%s/loadset.tmp-%d", dir, (int)getpid());
	enc_init(&e);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &st) == 0 && pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
	    !loadset_meta_len(hdr, sizeof(hdr), &meta, why, sizeof(why)) && meta <= (32u << 20) &&
	    (buf = malloc(meta)) && pread(fd, buf, meta, 0) == (ssize_t)meta)
		r = loadset_parse(buf, meta, (uint64_t)st.st_size, from, &ls, why, sizeof(why));
	close(fd);
	free(buf);
	/* Only an index carries over: stored contents would be the old ones. */
	if (!r && !(ls.flags & LOADSET_F_DATA)) {
		struct loadset_bind to = *from;
		uint64_t off;
		to.gen = new_gen;
		r = loadset_encode_meta(&e, &to, ls.runs, ls.nr_runs, NULL, &off);
		int t = r ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (!r && (t < 0 || snap_write_all(t, e.buf, e.len, 0) || ftruncate(t, (off_t)off) < 0 ||
			   fdatasync(t) < 0 || rename(tmp, path) < 0))
			r = -EIO;
		if (t >= 0)
			close(t);
	} else if (!r) {
		r = -ESTALE;
	}
	if (r) {
		unlink(tmp);
		unlink(path);
	}
	loadset_free(&ls);
	enc_free(&e);
	return r;
}
