/*
 * Our own memory cgroup: parsing /proc/self/cgroup, mountinfo and the
 * controller's files (pure), then finding, sampling and watching the cgroup
 * (I/O). cgroup v1 (memory controller) and v2 (unified) are both handled;
 * see signals.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "balloon/signals.h"
#include "balloon/sysfile.h"
#include "balloon/text.h"

#define MOUNTINFO_MAX (8u << 20)
#define SELF_CGROUP_MAX (64u << 10)
#define CG_FILE_MAX 16384
#define CG_WALK_MAX 64
#define CG_UNLIMITED (1ULL << 62) /* v1 shows PAGE_COUNTER_MAX pages for none */

/* ---- parsing (pure) ------------------------------------------------------ */

/* Is @tok one of the comma-separated items of @list? */
static bool list_has(const char *list, size_t len, const char *tok)
{
	size_t n = strlen(tok);
	const char *p = list, *end = list + len;

	while (p <= end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		const char *e = c ? c : end;
		if ((size_t)(e - p) == n && memcmp(p, tok, n) == 0)
			return true;
		if (!c)
			break;
		p = c + 1;
	}
	return false;
}

static int copy_path(const struct span *src, char *dst)
{
	size_t n = (size_t)(src->end - src->p);

	if (n == 0 || src->p[0] != '/' || memchr(src->p, 0, n))
		return -EINVAL;
	if (n >= SIG_PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(dst, src->p, n);
	dst[n] = 0;
	return 0;
}

int cgroup_parse_self(const char *buf, size_t len, struct cgroup_self *cs)
{
	struct span s = { buf, buf + len }, line;
	int rc = -EINVAL;

	memset(cs, 0, sizeof(*cs));
	while (next_line(&s, &line)) {
		const char *c1, *c2;
		struct span id, ctl, path;
		uint64_t idv;

		if (line.p == line.end)
			continue;
		c1 = memchr(line.p, ':', (size_t)(line.end - line.p));
		c2 = c1 ? memchr(c1 + 1, ':', (size_t)(line.end - c1 - 1)) : NULL;
		rc = -EINVAL;
		if (!c2)
			goto fail;
		id = (struct span){ line.p, c1 };
		ctl = (struct span){ c1 + 1, c2 };
		path = (struct span){ c2 + 1, line.end };
		if (parse_u64(&id, &idv) || id.p != id.end)
			goto fail;
		if (idv == 0 && ctl.p == ctl.end) {
			if (cs->have_v2)
				goto fail;
			rc = copy_path(&path, cs->v2_path);
			if (rc)
				goto fail;
			cs->have_v2 = true;
		} else if (list_has(ctl.p, (size_t)(ctl.end - ctl.p), "memory")) {
			if (cs->have_v1)
				goto fail;
			rc = copy_path(&path, cs->v1_path);
			if (rc)
				goto fail;
			cs->have_v1 = true;
		}
	}
	if (cs->have_v1 || cs->have_v2)
		return 0;
	rc = -ENODATA;
fail:
	memset(cs, 0, sizeof(*cs));
	return rc;
}

/* A mountinfo field with \ooo escapes decoded into @dst. */
static int unescape(const struct span *f, char *dst, size_t cap)
{
	size_t n = 0;

	for (const char *p = f->p; p < f->end; p++) {
		char c = *p;
		if (c == '\\' && f->end - p >= 4 && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
		    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			c = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		}
		if (c == 0)
			return -EINVAL;
		if (n + 1 >= cap)
			return -ENAMETOOLONG;
		dst[n++] = c;
	}
	dst[n] = 0;
	return 0;
}

int mountinfo_parse_line(const char *buf, size_t len, struct mount_entry *e)
{
	struct span line = { buf, buf + len }, f[6], w, fstype, source, opts;
	int rc;

	memset(e, 0, sizeof(*e));
	for (unsigned i = 0; i < 6; i++) {
		word(&line, &f[i]);
		if (f[i].p == f[i].end)
			return -EINVAL;
	}
	do { /* optional fields up to the lone "-" */
		word(&line, &w);
		if (w.p == w.end)
			return -EINVAL;
	} while (!word_is(&w, "-"));
	word(&line, &fstype);
	word(&line, &source);
	word(&line, &opts);
	if (opts.p == opts.end) /* an empty source leaves two words */
		opts = source;
	if (opts.p == opts.end || !at_end(&line))
		return -EINVAL;
	rc = unescape(&f[3], e->root, sizeof(e->root));
	if (!rc)
		rc = unescape(&f[4], e->mount_point, sizeof(e->mount_point));
	if (!rc)
		rc = unescape(&fstype, e->fstype, sizeof(e->fstype));
	if (!rc && (e->root[0] != '/' || e->mount_point[0] != '/'))
		rc = -EINVAL;
	if (rc) {
		memset(e, 0, sizeof(*e));
		return rc;
	}
	e->opt_memory = list_has(opts.p, (size_t)(opts.end - opts.p), "memory");
	return 0;
}

/* @path relative to @root, or NULL when @root is not a prefix of it. */
static const char *under_root(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return path;
	if (strncmp(path, root, n) != 0 || (path[n] != 0 && path[n] != '/'))
		return NULL;
	return path + n;
}

static int join3(char *dst, size_t cap, const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);

	if (la + lb + lc + 1 > cap)
		return -ENAMETOOLONG;
	memcpy(dst, a, la);
	memcpy(dst + la, b, lb);
	memcpy(dst + la + lb, c, lc + 1);
	return 0;
}

int cgroup_locate(const struct cgroup_self *self, enum cgroup_version version,
		  const char *mountinfo, size_t len, const char *root_override, char *dir,
		  size_t dirlen, char *mnt, size_t mntlen)
{
	struct span s = { mountinfo, mountinfo + len }, line;
	const char *path, *pre = root_override ? root_override : "";
	struct mount_entry e;

	if (dirlen)
		dir[0] = 0;
	if (mntlen)
		mnt[0] = 0;
	if (version == CGROUP_V1 && self->have_v1)
		path = self->v1_path;
	else if (version == CGROUP_V2 && self->have_v2)
		path = self->v2_path;
	else
		return -ENOENT;
	while (next_line(&s, &line)) {
		const char *rel;
		int rc;

		if (mountinfo_parse_line(line.p, (size_t)(line.end - line.p), &e))
			continue;
		if (version == CGROUP_V1 ? strcmp(e.fstype, "cgroup") != 0 || !e.opt_memory
					 : strcmp(e.fstype, "cgroup2") != 0)
			continue;
		rel = under_root(path, e.root);
		if (!rel)
			continue;
		if (strcmp(rel, "/") == 0)
			rel = "";
		rc = join3(dir, dirlen, pre, e.mount_point, rel);
		if (!rc)
			rc = join3(mnt, mntlen, pre, e.mount_point, "");
		return rc;
	}
	return -ENOENT;
}

int cgroup_parse_u64(const char *buf, size_t len, uint64_t *v)
{
	struct span s = { buf, buf + len };
	int rc;

	*v = 0;
	trim(&s);
	rc = parse_u64(&s, v);
	if (!rc && s.p != s.end)
		rc = -EINVAL;
	if (rc)
		*v = 0;
	return rc;
}

int cgroup_parse_limit(const char *buf, size_t len, uint64_t *limit, bool *limited)
{
	struct span s = { buf, buf + len };
	int rc;

	*limit = 0;
	*limited = false;
	trim(&s);
	if ((size_t)(s.end - s.p) == 3 && memcmp(s.p, "max", 3) == 0)
		return 0;
	rc = cgroup_parse_u64(buf, len, limit);
	if (rc == -ERANGE)
		return 0; /* beyond 2^64: certainly no limit */
	if (rc)
		return rc;
	if (*limit >= CG_UNLIMITED)
		*limit = 0;
	else
		*limited = true;
	return 0;
}

int cgroup_parse_keyed(const char *buf, size_t len, const char *key, uint64_t *v)
{
	struct span s = { buf, buf + len }, line, w;
	bool found = false;

	*v = 0;
	while (next_line(&s, &line)) {
		uint64_t x;
		word(&line, &w);
		if (!word_is(&w, key))
			continue;
		skip_blank(&line);
		if (found || parse_u64(&line, &x) || !at_end(&line)) {
			*v = 0;
			return -EINVAL;
		}
		*v = x;
		found = true;
	}
	return found ? 0 : -ENOENT;
}

/* ---- finding the cgroup ---------------------------------------------------- */

static bool has_file(const char *dir, const char *name)
{
	char path[SIG_PATH_MAX];

	return sig_path(path, sizeof(path), dir, name) == 0 && access(path, R_OK) == 0;
}

static int try_version(const struct host_paths *p, const struct cgroup_self *self,
		       enum cgroup_version v, const char *mountinfo, size_t len,
		       struct cgroup_mem *cg)
{
	int rc = cgroup_locate(self, v, mountinfo, len, p->cgroup_root_override, cg->dir,
			       sizeof(cg->dir), cg->mnt, sizeof(cg->mnt));

	if (rc)
		return rc;
	if (!has_file(cg->dir, v == CGROUP_V1 ? "memory.limit_in_bytes" : "memory.current"))
		return -ENOENT;
	cg->version = v;
	return 0;
}

int cgroup_open(const struct host_paths *p, struct cgroup_mem *cg)
{
	char path[SIG_PATH_MAX], *buf = NULL;
	struct cgroup_self self;
	size_t cap = 0, len;
	int rc;

	memset(cg, 0, sizeof(*cg));
	rc = sig_path(path, sizeof(path), p->proc, "self/cgroup");
	if (!rc)
		rc = sig_read(path, &buf, &cap, SELF_CGROUP_MAX, &len);
	if (!rc)
		rc = cgroup_parse_self(buf, len, &self);
	if (rc == -ENODATA)
		rc = -ENOENT;
	if (!rc)
		rc = sig_path(path, sizeof(path), p->proc, "self/mountinfo");
	if (!rc)
		rc = sig_read(path, &buf, &cap, MOUNTINFO_MAX, &len);
	if (!rc) {
		rc = -ENOENT;
		if (self.have_v1)
			rc = try_version(p, &self, CGROUP_V1, buf, len, cg);
		if (rc && self.have_v2)
			rc = try_version(p, &self, CGROUP_V2, buf, len, cg);
	}
	free(buf);
	if (rc)
		memset(cg, 0, sizeof(*cg));
	return rc;
}

/* ---- sampling ---------------------------------------------------------------- */

static int cg_read(const char *dir, const char *name, char *buf, size_t *len)
{
	char path[SIG_PATH_MAX];
	int rc = sig_path(path, sizeof(path), dir, name);

	return rc ? rc : sig_read_small(path, buf, CG_FILE_MAX, len);
}

/* Fold the limit in @name of @dir into (*limit, *limited); absent is fine. */
static int fold_limit(const char *dir, const char *name, char *buf, uint64_t *limit,
		      bool *limited)
{
	uint64_t v;
	bool lim;
	size_t len;
	int rc = cg_read(dir, name, buf, &len);

	if (rc == -ENOENT)
		return 0;
	if (!rc)
		rc = cgroup_parse_limit(buf, len, &v, &lim);
	if (rc)
		return rc;
	if (lim && (!*limited || v < *limit)) {
		*limit = v;
		*limited = true;
	}
	return 0;
}

static int read_v1(const struct cgroup_mem *cg, char *buf, struct cgroup_sample *s)
{
	size_t len;
	uint64_t v;
	int rc;

	rc = fold_limit(cg->dir, "memory.limit_in_bytes", buf, &s->limit, &s->limited);
	if (!rc)
		rc = cg_read(cg->dir, "memory.usage_in_bytes", buf, &len);
	if (!rc)
		rc = cgroup_parse_u64(buf, len, &s->usage);
	if (rc)
		return rc;
	if (!cg_read(cg->dir, "memory.stat", buf, &len)) {
		/* An ancestor's limit binds too (use_hierarchy). */
		if (!cgroup_parse_keyed(buf, len, "hierarchical_memory_limit", &v) &&
		    v < CG_UNLIMITED && (!s->limited || v < s->limit)) {
			s->limit = v;
			s->limited = true;
		}
		if (!cgroup_parse_keyed(buf, len, "total_inactive_file", &s->file) ||
		    !cgroup_parse_keyed(buf, len, "inactive_file", &s->file))
			s->have_file = true;
	}
	if (!cg_read(cg->dir, "memory.oom_control", buf, &len) &&
	    !cgroup_parse_keyed(buf, len, "oom_kill", &s->oom_kills))
		s->have_oom_kills = true;
	return 0;
}

static int read_v2(const struct cgroup_mem *cg, char *buf, struct cgroup_sample *s)
{
	char dir[SIG_PATH_MAX];
	size_t len, top = strlen(cg->mnt);
	int rc;

	/* memory.max and memory.high of every ancestor up to the mount. */
	memcpy(dir, cg->dir, sizeof(dir));
	for (unsigned i = 0; i < CG_WALK_MAX; i++) {
		char *slash;
		rc = fold_limit(dir, "memory.max", buf, &s->limit, &s->limited);
		if (!rc)
			rc = fold_limit(dir, "memory.high", buf, &s->limit, &s->limited);
		if (rc)
			return rc;
		slash = strrchr(dir, '/');
		if (strlen(dir) <= top || !slash || (size_t)(slash - dir) < top)
			break;
		*slash = 0;
	}
	rc = cg_read(cg->dir, "memory.current", buf, &len);
	if (!rc)
		rc = cgroup_parse_u64(buf, len, &s->usage);
	if (rc)
		return rc;
	if (!cg_read(cg->dir, "memory.stat", buf, &len) &&
	    !cgroup_parse_keyed(buf, len, "inactive_file", &s->file))
		s->have_file = true;
	if (!cg_read(cg->dir, "memory.events", buf, &len) &&
	    !cgroup_parse_keyed(buf, len, "oom_kill", &s->oom_kills))
		s->have_oom_kills = true;
	return 0;
}

int cgroup_read(struct cgroup_mem *cg, struct cgroup_sample *s)
{
	char *buf = malloc(CG_FILE_MAX);
	int rc;

	memset(s, 0, sizeof(*s));
	if (!buf)
		return -ENOMEM;
	if (cg->version == CGROUP_V1)
		rc = read_v1(cg, buf, s);
	else if (cg->version == CGROUP_V2)
		rc = read_v2(cg, buf, s);
	else
		rc = -ENOENT;
	free(buf);
	if (rc)
		memset(s, 0, sizeof(*s));
	return rc;
}

/* ---- pressure notification ---------------------------------------------------- */

/* "low|medium|critical[,hierarchy|,local]" */
static bool level_ok(const char *level)
{
	static const char *const levels[] = { "low", "medium", "critical" };
	const char *comma = strchr(level, ',');
	size_t n = comma ? (size_t)(comma - level) : strlen(level);
	bool ok = false;

	for (unsigned i = 0; i < 3; i++)
		ok |= strlen(levels[i]) == n && strncmp(level, levels[i], n) == 0;
	if (ok && comma)
		ok = strcmp(comma + 1, "hierarchy") == 0 || strcmp(comma + 1, "local") == 0;
	return ok;
}

static int v1_pressure_fd(const struct cgroup_mem *cg, const char *level)
{
	char path[SIG_PATH_MAX], line[64];
	int efd, plfd = -1, cfd = -1, n, rc;

	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return -errno;
	rc = sig_path(path, sizeof(path), cg->dir, "memory.pressure_level");
	if (!rc && (plfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		rc = -errno;
	if (!rc)
		rc = sig_path(path, sizeof(path), cg->dir, "cgroup.event_control");
	if (!rc && (cfd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		rc = -errno;
	if (!rc) {
		n = snprintf(line, sizeof(line), "%d %d %s", efd, plfd, level);
		if (write(cfd, line, (size_t)n) < 0)
			rc = -errno;
	}
	/* The kernel holds what it needs; closing the eventfd unregisters. */
	if (cfd >= 0)
		close(cfd);
	if (plfd >= 0)
		close(plfd);
	if (rc) {
		close(efd);
		return rc;
	}
	return efd;
}

int cgroup_pressure_fd(struct cgroup_mem *cg, const char *level)
{
	char path[SIG_PATH_MAX];
	int fd;

	if (!level || !level_ok(level))
		return -EINVAL;
	if (cg->version == CGROUP_V1)
		return v1_pressure_fd(cg, level);
	if (cg->version != CGROUP_V2)
		return -ENOENT;
	if (sig_path(path, sizeof(path), cg->dir, "memory.events"))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}
