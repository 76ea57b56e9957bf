/*
 * libFuzzer: the host-pressure text parsers (meminfo, zoneinfo, PSI, lmk
 * minfree/adj, oom_score_adj, cgroup files, /proc/self/cgroup, mountinfo
 * lines and cgroup location) on arbitrary bytes. Every parser sees the whole
 * input; cgroup_locate gets the part before the first NUL as
 * /proc/self/cgroup and the rest as mountinfo. Results must be either an
 * error with zeroed output or values that respect the documented bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "balloon/signals.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, 0, cap) != NULL;
}

static void text_parsers(const char *p, size_t n)
{
	struct meminfo m;
	struct zone_watermarks z;
	struct psi_memory psi;
	uint64_t pages[LMK_MAX_LEVELS], v;
	int adj[LMK_MAX_LEVELS], score;
	unsigned np, na;
	bool limited;
	struct lmk_table t;
	struct lmk_thresholds th;

	if (meminfo_parse(p, n, &m) == 0)
		MUST(m.mem_free <= m.mem_total && m.mem_total % 1024 == 0);
	else
		MUST(m.mem_total == 0 && m.mem_free == 0 && !m.have_available);

	if (zoneinfo_parse(p, n, 4096, &z) == 0)
		MUST(z.zones > 0 && z.low % 4096 == 0);
	else
		MUST(z.zones == 0 && z.min == 0 && z.low == 0 && z.high == 0);

	if (psi_parse(p, n, &psi) == 0)
		MUST(psi.some.avg10 >= 0 && psi.some.avg10 <= 100 && psi.some.avg300 <= 100 &&
		     psi.full.avg60 <= 100);
	else
		MUST(psi.some.total == 0 && !psi.have_full);

	if (lmk_parse_minfree(p, n, pages, LMK_MAX_LEVELS, &np) == 0) {
		MUST(np >= 1 && np <= LMK_MAX_LEVELS);
		for (unsigned i = 0; i < np; i++)
			MUST(pages[i] < (1ULL << 40));
	} else {
		MUST(np == 0);
	}
	if (lmk_parse_adj(p, n, adj, LMK_MAX_LEVELS, &na) == 0) {
		MUST(na >= 1 && na <= LMK_MAX_LEVELS);
		for (unsigned i = 0; i < na; i++)
			MUST(adj[i] >= -1000 && adj[i] <= 1000);
	} else {
		MUST(na == 0);
	}
	if (np && na && lmk_table_build(pages, np, adj, na, 4096, &t) == 0 &&
	    lmk_thresholds_derive(&t, &th) == 0)
		MUST(th.perceptible_bytes % 4096 == 0 && th.cached_bytes % 4096 == 0);

	if (oom_score_adj_parse(p, n, &score) == 0)
		MUST(score >= -1000 && score <= 1000);
	else
		MUST(score == 0);

	if (cgroup_parse_limit(p, n, &v, &limited) == 0)
		MUST(limited ? v < (1ULL << 62) : v == 0);
	else
		MUST(v == 0 && !limited);
	if (cgroup_parse_u64(p, n, &v) != 0)
		MUST(v == 0);
	if (cgroup_parse_keyed(p, n, "oom_kill", &v) != 0)
		MUST(v == 0);
}

static void cgroup_parsers(const char *p, size_t n)
{
	const char *nul = memchr(p, 0, n);
	size_t self_len = nul ? (size_t)(nul - p) : n;
	const char *mi = nul ? nul + 1 : p;
	size_t mi_len = nul ? n - self_len - 1 : n;
	struct cgroup_self s;
	struct mount_entry e;
	char dir[SIG_PATH_MAX], mnt[SIG_PATH_MAX];

	if (cgroup_parse_self(p, self_len, &s) == 0) {
		MUST(s.have_v1 || s.have_v2);
		MUST(terminated(s.v1_path, sizeof(s.v1_path)) && terminated(s.v2_path, sizeof(s.v2_path)));
		MUST(!s.have_v1 || s.v1_path[0] == '/');
		MUST(!s.have_v2 || s.v2_path[0] == '/');
		for (int v = CGROUP_V1; v <= CGROUP_V2; v++) {
			if (cgroup_locate(&s, (enum cgroup_version)v, mi, mi_len, "/fake", dir,
					  sizeof(dir), mnt, sizeof(mnt)) == 0)
				MUST(strncmp(dir, "/fake/", 6) == 0 && strncmp(mnt, dir, strlen(mnt)) == 0);
		}
	} else {
		MUST(!s.have_v1 && !s.have_v2 && s.v1_path[0] == 0);
	}

	if (mountinfo_parse_line(p, n, &e) == 0)
		MUST(e.root[0] == '/' && e.mount_point[0] == '/' &&
		     terminated(e.fstype, sizeof(e.fstype)) &&
		     terminated(e.mount_point, sizeof(e.mount_point)));
	else
		MUST(e.root[0] == 0 && e.mount_point[0] == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;

	text_parsers(p, size);
	cgroup_parsers(p, size);
	return 0;
}
