/*
 * Host memory-pressure signals: pure parsers of the kernel's text files.
 * The file-system side is in signals_io.c. See signals.h for the formats
 * and error codes.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "balloon/signals.h"
#include "balloon/text.h"

void host_paths_default(struct host_paths *p)
{
	p->proc = "/proc";
	p->sys = "/sys";
	p->cgroup_root_override = NULL;
}

/* ---- /proc/meminfo ----------------------------------------------------- */

static const struct {
	const char *key;
	size_t off;
} meminfo_keys[] = {
	{ "MemTotal", offsetof(struct meminfo, mem_total) },
	{ "MemFree", offsetof(struct meminfo, mem_free) },
	{ "MemAvailable", offsetof(struct meminfo, mem_available) },
	{ "Buffers", offsetof(struct meminfo, buffers) },
	{ "Cached", offsetof(struct meminfo, cached) },
	{ "Shmem", offsetof(struct meminfo, shmem) },
	{ "SwapTotal", offsetof(struct meminfo, swap_total) },
	{ "SwapFree", offsetof(struct meminfo, swap_free) },
};
#define MEMINFO_NKEYS (sizeof(meminfo_keys) / sizeof(meminfo_keys[0]))

static int meminfo_line(struct span *line, struct meminfo *m, unsigned *seen)
{
	const char *colon = memchr(line->p, ':', (size_t)(line->end - line->p));
	size_t klen;
	uint64_t kb, bytes;
	int rc;

	if (!colon)
		return 0; /* not a "Key:" line: ignored like unknown keys */
	klen = (size_t)(colon - line->p);
	for (unsigned i = 0; i < MEMINFO_NKEYS; i++) {
		if (strlen(meminfo_keys[i].key) != klen ||
		    memcmp(meminfo_keys[i].key, line->p, klen) != 0)
			continue;
		if (*seen & (1u << i))
			return -EINVAL;
		line->p = colon + 1;
		skip_blank(line);
		rc = parse_u64(line, &kb);
		if (rc)
			return rc;
		skip_blank(line);
		if (!eat(line, "kB") || !at_end(line))
			return -EINVAL;
		if (mul_ok(kb, 1024, &bytes))
			return -ERANGE;
		*(uint64_t *)(void *)((char *)m + meminfo_keys[i].off) = bytes;
		*seen |= 1u << i;
		return 0;
	}
	return 0;
}

int meminfo_parse(const char *buf, size_t len, struct meminfo *m)
{
	struct span s = { buf, buf + len }, line;
	unsigned seen = 0;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	while (next_line(&s, &line)) {
		rc = meminfo_line(&line, m, &seen);
		if (rc)
			goto fail;
	}
	rc = -ENODATA;
	if ((seen & 3u) != 3u) /* MemTotal and MemFree */
		goto fail;
	rc = -EINVAL;
	if (m->mem_free > m->mem_total)
		goto fail;
	m->have_available = seen & 4u;
	return 0;
fail:
	memset(m, 0, sizeof(*m));
	return rc;
}

/* ---- /proc/zoneinfo ---------------------------------------------------- */

/* "Node N, zone NAME" */
static int zone_header(struct span *line)
{
	struct span name;
	uint64_t node;

	if (!eat(line, "Node "))
		return -EINVAL;
	skip_blank(line);
	if (parse_u64(line, &node) || !eat(line, ","))
		return -EINVAL;
	skip_blank(line);
	if (!eat(line, "zone"))
		return -EINVAL;
	word(line, &name);
	if (name.p == name.end || !at_end(line))
		return -EINVAL;
	return 0;
}

int zoneinfo_parse(const char *buf, size_t len, uint64_t page_size, struct zone_watermarks *z)
{
	static const char *const marks[3] = { "min", "low", "high" };
	struct span s = { buf, buf + len }, line, w;
	uint64_t pages[3] = { 0, 0, 0 }, v;
	unsigned have = 0, zones = 0;
	bool in_zone = false;
	int rc = -EINVAL;

	memset(z, 0, sizeof(*z));
	if (!page_size)
		return -EINVAL;
	while (next_line(&s, &line)) {
		if (line.p < line.end && line.p[0] == 'N') {
			rc = -EINVAL;
			if (in_zone && have != 7u)
				goto fail;
			rc = zone_header(&line);
			if (rc)
				goto fail;
			in_zone = true;
			have = 0;
			zones++;
			continue;
		}
		if (!in_zone)
			continue;
		word(&line, &w);
		for (unsigned i = 0; i < 3; i++) {
			if (!word_is(&w, marks[i]) || (have & (1u << i)))
				continue;
			skip_blank(&line);
			rc = parse_u64(&line, &v);
			if (rc)
				goto fail;
			rc = -EINVAL;
			if (!at_end(&line))
				goto fail;
			rc = -ERANGE;
			if (add_ok(&pages[i], v))
				goto fail;
			have |= 1u << i;
		}
	}
	rc = zones ? -EINVAL : -ENODATA;
	if (!zones || have != 7u)
		goto fail;
	rc = -ERANGE;
	if (mul_ok(pages[0], page_size, &z->min) || mul_ok(pages[1], page_size, &z->low) ||
	    mul_ok(pages[2], page_size, &z->high))
		goto fail;
	z->zones = zones;
	return 0;
fail:
	memset(z, 0, sizeof(*z));
	return rc;
}

/* ---- PSI --------------------------------------------------------------- */

/* "D+[.D+]" as a percentage 0..100. */
static int parse_percent(struct span *s, double *out)
{
	uint64_t ip, fp = 0;
	double scale = 1.0;
	int rc = parse_u64(s, &ip);

	if (rc)
		return rc;
	if (eat(s, ".")) {
		const char *start = s->p;
		while (s->p < s->end && is_digit(*s->p)) {
			if (s->p - start >= 9)
				return -EINVAL;
			fp = fp * 10 + (uint64_t)(*s->p - '0');
			scale *= 10.0;
			s->p++;
		}
		if (s->p == start)
			return -EINVAL;
	}
	if (ip > 100 || (ip == 100 && fp))
		return -ERANGE;
	*out = (double)ip + (double)fp / scale;
	return 0;
}

static int psi_fields(struct span *line, struct psi_line *out)
{
	static const char *const keys[3] = { "avg10=", "avg60=", "avg300=" };
	double *avg[3] = { &out->avg10, &out->avg60, &out->avg300 };
	int rc;

	for (unsigned i = 0; i < 3; i++) {
		skip_blank(line);
		if (!eat(line, keys[i]))
			return -EINVAL;
		rc = parse_percent(line, avg[i]);
		if (rc)
			return rc;
	}
	skip_blank(line);
	if (!eat(line, "total="))
		return -EINVAL;
	rc = parse_u64(line, &out->total);
	if (rc)
		return rc;
	return at_end(line) ? 0 : -EINVAL;
}

int psi_parse(const char *buf, size_t len, struct psi_memory *p)
{
	struct span s = { buf, buf + len }, line, w;
	bool have_some = false;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	while (next_line(&s, &line)) {
		word(&line, &w);
		if (word_is(&w, "some") || word_is(&w, "full")) {
			bool some = w.p[0] == 's';
			rc = -EINVAL;
			if (some ? have_some : p->have_full)
				goto fail;
			rc = psi_fields(&line, some ? &p->some : &p->full);
			if (rc)
				goto fail;
			if (some)
				have_some = true;
			else
				p->have_full = true;
		} else if (w.p != w.end) {
			rc = -EINVAL; /* the file has only these two lines */
			goto fail;
		}
	}
	rc = -ENODATA;
	if (!have_some)
		goto fail;
	return 0;
fail:
	memset(p, 0, sizeof(*p));
	return rc;
}

/* ---- low-memory killer -------------------------------------------------- */

void lmk_table_default(struct lmk_table *t)
{
	static const uint64_t pages[] = { 18432, 23040, 27648, 32256, 55296, 80640 };
	static const int adj[] = { 0, 100, 200, 250, 900, 950 };

	memset(t, 0, sizeof(*t));
	t->n = sizeof(pages) / sizeof(pages[0]);
	t->page_size = 4096;
	memcpy(t->minfree_pages, pages, sizeof(pages));
	memcpy(t->score_adj, adj, sizeof(adj));
}

/* "a,b,c" with optional white space around the whole list. */
static int parse_list(const char *buf, size_t len, int64_t cap, bool allow_neg, int64_t *vals,
		      unsigned max, unsigned *n)
{
	struct span s = { buf, buf + len };
	unsigned k = 0;
	int rc;

	*n = 0;
	trim(&s);
	if (s.p == s.end)
		return -ENODATA;
	for (;;) {
		if (k == max)
			return -EINVAL;
		if (!allow_neg && s.p < s.end && *s.p == '-')
			return -ERANGE;
		rc = parse_i64(&s, cap, &vals[k]);
		if (rc)
			return rc;
		k++;
		if (s.p == s.end)
			break;
		if (!eat(&s, ","))
			return -EINVAL;
	}
	*n = k;
	return 0;
}

int lmk_parse_minfree(const char *buf, size_t len, uint64_t *pages, unsigned max, unsigned *n)
{
	int64_t v[LMK_MAX_LEVELS];
	int rc;

	if (max > LMK_MAX_LEVELS)
		max = LMK_MAX_LEVELS;
	rc = parse_list(buf, len, ((int64_t)1 << 40) - 1, false, v, max, n);
	if (rc) {
		*n = 0;
		return rc;
	}
	for (unsigned i = 0; i < *n; i++)
		pages[i] = (uint64_t)v[i];
	return 0;
}

int lmk_parse_adj(const char *buf, size_t len, int *score_adj, unsigned max, unsigned *n)
{
	int64_t v[LMK_MAX_LEVELS], hi = INT64_MIN;
	bool old;
	int rc;

	if (max > LMK_MAX_LEVELS)
		max = LMK_MAX_LEVELS;
	rc = parse_list(buf, len, 1000, true, v, max, n);
	if (rc) {
		*n = 0;
		return rc;
	}
	for (unsigned i = 0; i < *n; i++)
		hi = v[i] > hi ? v[i] : hi;
	old = hi <= 15; /* oom_adj scale, as Android's driver detects it */
	for (unsigned i = 0; i < *n; i++) {
		if (old && v[i] < -17) {
			*n = 0;
			return -ERANGE;
		}
		if (!old)
			score_adj[i] = (int)v[i];
		else if (v[i] == 15)
			score_adj[i] = 1000;
		else
			score_adj[i] = (int)(v[i] * 1000 / 17);
	}
	return 0;
}

int lmk_table_build(const uint64_t *pages, unsigned npages, const int *adj, unsigned nadj,
		    uint64_t page_size, struct lmk_table *t)
{
	unsigned n = npages < nadj ? npages : nadj;

	memset(t, 0, sizeof(*t));
	if (!page_size)
		return -EINVAL;
	if (n > LMK_MAX_LEVELS)
		n = LMK_MAX_LEVELS;
	if (!n)
		return -ENODATA;
	t->n = n;
	t->page_size = page_size;
	memcpy(t->minfree_pages, pages, n * sizeof(pages[0]));
	memcpy(t->score_adj, adj, n * sizeof(adj[0]));
	return 0;
}

static int lmk_level_bytes(const struct lmk_table *t, int adj, uint64_t *out)
{
	unsigned i = 0;

	while (i + 1 < t->n && t->score_adj[i] < adj)
		i++;
	return mul_ok(t->minfree_pages[i], t->page_size, out);
}

int lmk_thresholds_derive(const struct lmk_table *t, struct lmk_thresholds *out)
{
	memset(out, 0, sizeof(*out));
	if (!t->n || t->n > LMK_MAX_LEVELS)
		return -ENODATA;
	if (!t->page_size)
		return -EINVAL;
	if (lmk_level_bytes(t, LMK_PERCEPTIBLE_ADJ, &out->perceptible_bytes) ||
	    lmk_level_bytes(t, LMK_CACHED_ADJ, &out->cached_bytes)) {
		memset(out, 0, sizeof(*out));
		return -ERANGE;
	}
	return 0;
}

/* ---- oom_score_adj ----------------------------------------------------- */

void oom_class_config_default(struct oom_class_config *c)
{
	c->fg_max = 200;
	c->bg_min = 900;
}

enum oom_class oom_classify(const struct oom_class_config *c, int score_adj)
{
	if (score_adj <= c->fg_max)
		return OOM_CLASS_FOREGROUND;
	if (score_adj >= c->bg_min)
		return OOM_CLASS_BACKGROUND;
	return OOM_CLASS_UNCHANGED;
}

bool oom_foreground_update(const struct oom_class_config *c, int score_adj, bool was_foreground)
{
	switch (oom_classify(c, score_adj)) {
	case OOM_CLASS_FOREGROUND:
		return true;
	case OOM_CLASS_BACKGROUND:
		return false;
	case OOM_CLASS_UNCHANGED:
		break;
	}
	return was_foreground;
}

int oom_score_adj_parse(const char *buf, size_t len, int *score_adj)
{
	struct span s = { buf, buf + len };
	int64_t v;
	int rc;

	*score_adj = 0;
	trim(&s);
	rc = parse_i64(&s, 1000, &v);
	if (rc)
		return rc;
	if (s.p != s.end)
		return -EINVAL;
	*score_adj = (int)v;
	return 0;
}

uint64_t host_free_bytes(uint64_t mem_available, bool cg_limited, uint64_t cg_limit,
			 uint64_t cg_usage, uint64_t cg_file)
{
	uint64_t room;

	if (!cg_limited)
		return mem_available;
	room = cg_limit > UINT64_MAX - cg_file ? UINT64_MAX : cg_limit + cg_file;
	room = room > cg_usage ? room - cg_usage : 0;
	return room < mem_available ? room : mem_available;
}
