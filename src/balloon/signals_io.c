/*
 * Host memory-pressure signals: reading the kernel's files under injectable
 * roots (struct host_paths), PSI triggers, and one combined sample. The
 * parsing is in signals.c and cgroup.c; this file only does I/O.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balloon/signals.h"
#include "balloon/sysfile.h"
#include "core/log.h"

#define READ_MAX_PROC (4u << 20) /* zoneinfo of a large NUMA machine fits */
#define READ_INITIAL 16384

/* ---- file reading ------------------------------------------------------ */

int sig_path(char *dst, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(dst, cap, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int read_fd(int fd, char *buf, size_t cap, size_t *len)
{
	size_t n = 0;

	for (;;) {
		ssize_t r;
		if (n == cap)
			return -EFBIG; /* the caller may grow and retry */
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
	return 0;
}

int sig_read_small(const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	*len = 0;
	if (fd < 0)
		return -errno;
	rc = read_fd(fd, buf, cap, len);
	close(fd);
	return rc;
}

int sig_read(const char *path, char **buf, size_t *cap, size_t max, size_t *len)
{
	int rc;

	*len = 0;
	for (;;) {
		if (!*buf || !*cap) {
			size_t want = READ_INITIAL < max ? READ_INITIAL : max;
			char *nb = realloc(*buf, want);
			if (!nb)
				return -ENOMEM;
			*buf = nb;
			*cap = want;
		}
		/* Proc files are generated on read: re-read whole after growing. */
		rc = sig_read_small(path, *buf, *cap, len);
		if (rc != -EFBIG)
			return rc;
		if (*cap >= max)
			return -EFBIG;
		{
			size_t want = *cap * 2 < max ? *cap * 2 : max;
			char *nb = realloc(*buf, want);
			if (!nb)
				return -ENOMEM;
			*buf = nb;
			*cap = want;
		}
	}
}

/* ---- PSI trigger --------------------------------------------------------- */

int psi_trigger_open(const struct host_paths *p, const char *kind, unsigned stall_us,
		     unsigned window_us)
{
	char path[SIG_PATH_MAX], trig[64];
	int fd, n;
	ssize_t w;

	if (!kind || (strcmp(kind, "some") != 0 && strcmp(kind, "full") != 0) || !stall_us ||
	    stall_us > window_us)
		return -EINVAL;
	if (sig_path(path, sizeof(path), p->proc, "pressure/memory"))
		return -ENAMETOOLONG;
	n = snprintf(trig, sizeof(trig), "%s %u %u", kind, stall_us, window_us);
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, trig, (size_t)n + 1); /* the kernel's example sends the NUL */
	if (w < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* ---- low-memory killer and oom_score_adj -------------------------------- */

static int lmk_read_kernel(const struct host_paths *p, uint64_t page_size, struct lmk_table *t)
{
	char path[SIG_PATH_MAX], buf[512];
	uint64_t pages[LMK_MAX_LEVELS];
	int adj[LMK_MAX_LEVELS];
	unsigned np, na;
	size_t len;
	int rc;

	rc = sig_path(path, sizeof(path), p->sys, "module/lowmemorykiller/parameters/minfree");
	if (!rc)
		rc = sig_read_small(path, buf, sizeof(buf), &len);
	if (!rc)
		rc = lmk_parse_minfree(buf, len, pages, LMK_MAX_LEVELS, &np);
	if (!rc)
		rc = sig_path(path, sizeof(path), p->sys, "module/lowmemorykiller/parameters/adj");
	if (!rc)
		rc = sig_read_small(path, buf, sizeof(buf), &len);
	if (!rc)
		rc = lmk_parse_adj(buf, len, adj, LMK_MAX_LEVELS, &na);
	if (!rc)
		rc = lmk_table_build(pages, np, adj, na, page_size, t);
	return rc;
}

int lmk_read(const struct host_paths *p, uint64_t page_size, const struct lmk_table *fallback,
	     struct lmk_thresholds *out)
{
	struct lmk_table t;
	int rc = lmk_read_kernel(p, page_size, &t);

	if (!rc && !lmk_thresholds_derive(&t, out)) {
		out->from_kernel = true;
		return 0;
	}
	if (rc != -ENOENT)
		pr_warn("balloon: lmk_read: lowmemorykiller parameters unusable (%s), using the table",
			strerror(-rc));
	if (!fallback) {
		lmk_table_default(&t);
		fallback = &t;
	}
	return lmk_thresholds_derive(fallback, out);
}

int oom_score_adj_read(const struct host_paths *p, int *score_adj)
{
	char path[SIG_PATH_MAX], buf[32];
	size_t len;
	int rc;

	*score_adj = 0;
	rc = sig_path(path, sizeof(path), p->proc, "self/oom_score_adj");
	if (!rc)
		rc = sig_read_small(path, buf, sizeof(buf), &len);
	if (!rc)
		rc = oom_score_adj_parse(buf, len, score_adj);
	return rc;
}

/* ---- the combined sample ------------------------------------------------- */

int host_reader_init(struct host_reader *r, const struct host_paths *p,
		     const struct lmk_table *lmk_fallback)
{
	long ps = sysconf(_SC_PAGESIZE);
	int rc;

	memset(r, 0, sizeof(*r));
	if (p)
		r->paths = *p;
	else
		host_paths_default(&r->paths);
	r->page_size = ps > 0 ? (uint64_t)ps : 4096;
	r->buf = malloc(READ_INITIAL);
	if (!r->buf)
		return -ENOMEM;
	r->cap = READ_INITIAL;
	rc = cgroup_open(&r->paths, &r->cg);
	r->have_cg = rc == 0;
	if (rc && rc != -ENOENT)
		pr_warn("balloon: host_reader_init: memory cgroup not usable: %s", strerror(-rc));
	rc = lmk_read(&r->paths, r->page_size, lmk_fallback, &r->lmk);
	if (rc) {
		pr_err("balloon: host_reader_init: lmk fallback table unusable: %s", strerror(-rc));
		host_reader_close(r);
	}
	return rc;
}

void host_reader_close(struct host_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

static int read_proc(struct host_reader *r, const char *name, size_t *len)
{
	char path[SIG_PATH_MAX];
	int rc = sig_path(path, sizeof(path), r->paths.proc, name);

	return rc ? rc : sig_read(path, &r->buf, &r->cap, READ_MAX_PROC, len);
}

/* MemAvailable, or its pre-3.14 estimate, never above MemTotal. */
static uint64_t mem_available(const struct meminfo *m)
{
	uint64_t a = m->mem_available;

	if (!m->have_available) {
		uint64_t cache = m->cached > m->shmem ? m->cached - m->shmem : 0;
		a = m->mem_free + m->buffers + cache; /* each <= 2^64/1024: no overflow */
	}
	return a < m->mem_total ? a : m->mem_total;
}

int host_sample_read(struct host_reader *r, struct host_sample *s)
{
	struct meminfo mi;
	struct zone_watermarks zw;
	struct psi_memory psi;
	struct cgroup_sample cs;
	size_t len;
	int rc;

	memset(s, 0, sizeof(*s));
	rc = read_proc(r, "meminfo", &len);
	if (!rc)
		rc = meminfo_parse(r->buf, len, &mi);
	if (rc) {
		pr_warn_once("balloon: host_sample_read: meminfo: %s", strerror(-rc));
		return rc;
	}
	s->mem_total = mi.mem_total;
	s->mem_free = mi.mem_free;
	s->mem_available = mem_available(&mi);

	if (!read_proc(r, "zoneinfo", &len) && !zoneinfo_parse(r->buf, len, r->page_size, &zw)) {
		s->zone_min_sum = zw.min;
		s->zone_low_sum = zw.low;
		s->zone_high_sum = zw.high;
		s->have_zones = true;
	}
	if (!read_proc(r, "pressure/memory", &len) && !psi_parse(r->buf, len, &psi)) {
		s->psi_some_avg10 = psi.some.avg10;
		s->psi_some_total = psi.some.total;
		s->psi_full_avg10 = psi.full.avg10;
		s->psi_full_total = psi.full.total;
		s->have_psi = true;
	}
	if (r->have_cg) {
		rc = cgroup_read(&r->cg, &cs);
		if (!rc) {
			s->have_cg = true;
			s->cg_limited = cs.limited;
			s->cg_limit = cs.limit;
			s->cg_usage = cs.usage;
			s->cg_file = cs.file;
			s->cg_oom_kills = cs.oom_kills;
		} else {
			pr_warn_once("balloon: host_sample_read: cgroup %s: %s", r->cg.dir,
				     strerror(-rc));
		}
	}
	s->have_oom_score_adj = oom_score_adj_read(&r->paths, &s->oom_score_adj) == 0;
	s->perceptible_bytes = r->lmk.perceptible_bytes;
	s->cached_bytes = r->lmk.cached_bytes;
	s->host_free = host_free_bytes(s->mem_available, s->cg_limited, s->cg_limit, s->cg_usage,
				       s->cg_file);
	return 0;
}
