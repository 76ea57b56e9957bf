/*
 * Host-pressure signal parsers on real-looking and malformed text: every
 * parser's values, its error codes, and zeroed output on error. The I/O
 * layer is tested in test_signals_io.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "balloon/signals.h"
#include "harness.h"
#include "signals_fixtures.h"

/* ---- meminfo ------------------------------------------------------------- */

TEST(meminfo_real)
{
	struct meminfo m;

	CHECK_EQ(meminfo_parse(meminfo_host, strlen(meminfo_host), &m), 0);
	CHECK(m.mem_total == 24731708 * KB);
	CHECK(m.mem_free == 20900540 * KB);
	CHECK(m.mem_available == 24310184 * KB);
	CHECK(m.have_available);
	CHECK(m.buffers == 87492 * KB && m.cached == 3376832 * KB && m.shmem == 8856 * KB);
	CHECK(m.swap_total == 0 && m.swap_free == 0);

	/* Without MemAvailable (kernels before 3.14) and without a final newline. */
	CHECK_EQ(meminfo_parse("MemTotal: 100 kB\nMemFree: 50 kB", 31, &m), 0);
	CHECK(!m.have_available && m.mem_free == 50 * KB);
}

TEST(meminfo_malformed)
{
	static const struct {
		const char *text;
		int rc;
	} rows[] = {
		{ "", -ENODATA },
		{ "MemTotal: 100 kB\n", -ENODATA },
		{ "MemTotal: 100 kB\nMemFree: 50", -EINVAL },
		{ "MemTotal: 100 kB\nMemFree: 50 k", -EINVAL },
		{ "MemTotal: 100 kB\nMemFree: 50 kB extra\n", -EINVAL },
		{ "MemTotal: 100 kB\nMemFree: -50 kB\n", -EINVAL },
		{ "MemTotal: 100 kB\nMemFree: 0x10 kB\n", -EINVAL },
		{ "MemTotal: 100 kB\nMemTotal: 100 kB\nMemFree: 5 kB\n", -EINVAL },
		{ "MemTotal: 100 kB\nMemFree: 200 kB\n", -EINVAL },
		{ "MemTotal: 18446744073709551615 kB\nMemFree: 1 kB\n", -ERANGE },
		{ "MemTotal: 99999999999999999999999 kB\nMemFree: 1 kB\n", -ERANGE },
		{ "MemTotal:\nMemFree: 1 kB\n", -EINVAL },
	};
	struct meminfo m;

	for (size_t i = 0; i < N(rows); i++) {
		int rc = meminfo_parse(rows[i].text, strlen(rows[i].text), &m);
		if (rc != rows[i].rc)
			fprintf(stderr, "  row %zu: rc %d\n", i, rc);
		CHECK_EQ(rc, rows[i].rc);
		CHECK(m.mem_total == 0 && m.mem_free == 0); /* zeroed, never partial */
	}
	/* Unknown and odd lines are ignored. */
	static const char odd[] = "Garbage\nFoo: bar\n\nMemTotal: 100 kB\nMemFree: 50 kB\nZ:";
	CHECK_EQ(meminfo_parse(odd, strlen(odd), &m), 0);
	CHECK(m.mem_total == 100 * KB);
}

/* ---- zoneinfo ------------------------------------------------------------ */

TEST(zoneinfo_real)
{
	static char text[16384];
	struct zone_watermarks z;

	zone_text(text, sizeof(text), host_wm, 5, 1);
	CHECK_EQ(zoneinfo_parse(text, strlen(text), 4096, &z), 0);
	CHECK_EQ(z.zones, 5);
	CHECK(z.min == (31 + 6255 + 10608 + 32) * 4096ULL);
	CHECK(z.low == (38 + 7818 + 13260 + 32) * 4096ULL);
	CHECK(z.high == (45 + 9381 + 15912 + 32) * 4096ULL);

	/* Two nodes: everything counted twice; pageset "high:" lines ignored. */
	zone_text(text, sizeof(text), host_wm, 5, 2);
	CHECK_EQ(zoneinfo_parse(text, strlen(text), 4096, &z), 0);
	CHECK_EQ(z.zones, 10);
	CHECK(z.low == 2 * (38 + 7818 + 13260 + 32) * 4096ULL);
}

TEST(zoneinfo_malformed)
{
	static const struct {
		const char *text;
		uint64_t page;
		int rc;
	} rows[] = {
		{ "", 4096, -ENODATA },
		{ "  pages free 3\n        min 1\n", 4096, -ENODATA },
		{ "Node 0, zone DMA\n  pages free 3\n        min 1\n        high 3\n", 4096, -EINVAL },
		{ "Node 0, zone DMA\n  pages free 3\n        min 1\n        low", 4096, -EINVAL },
		{ "Node 0, zone DMA\n        min 1\n        low 2\n        high 3\n"
		  "Node 0, zone DMA32\n        min 1\n", 4096, -EINVAL },
		{ "Node 0, zone DMA\n  pages free 3\n"
		  "Node 0, zone DMA32\n        min 1\n        low 2\n        high 3\n", 4096, -EINVAL },
		{ "Node x, zone DMA\n        min 1\n        low 2\n        high 3\n", 4096, -EINVAL },
		{ "Node 0, zone\n        min 1\n        low 2\n        high 3\n", 4096, -EINVAL },
		{ "Node 0 zone DMA\n        min 1\n        low 2\n        high 3\n", 4096, -EINVAL },
		{ "Node 0, zone DMA\n        min 12abc\n        low 2\n        high 3\n", 4096, -EINVAL },
		{ "Node 0, zone DMA\n        min 1\n        low 2\n        high 3\n", 0, -EINVAL },
		{ "Node 0, zone DMA\n        min 18446744073709551615\n        low 2\n        high 3\n"
		  "Node 0, zone DMA32\n        min 1\n        low 2\n        high 3\n", 4096, -ERANGE },
		{ "Node 0, zone DMA\n        min 4503599627370496\n        low 2\n        high 3\n",
		  4096, -ERANGE },
	};
	struct zone_watermarks z;

	for (size_t i = 0; i < N(rows); i++) {
		int rc = zoneinfo_parse(rows[i].text, strlen(rows[i].text), rows[i].page, &z);
		if (rc != rows[i].rc)
			fprintf(stderr, "  row %zu: rc %d\n", i, rc);
		CHECK_EQ(rc, rows[i].rc);
		CHECK(z.zones == 0 && z.low == 0);
	}
	/* Only the first min/low/high of a zone counts. */
	static const char twice[] = "Node 0, zone DMA\n min 1\n low 2\n high 3\n low 900\n";
	CHECK_EQ(zoneinfo_parse(twice, strlen(twice), 1, &z), 0);
	CHECK(z.low == 2);
}

/* ---- PSI ------------------------------------------------------------------ */

TEST(psi_real_and_malformed)
{
	static const char real[] = "some avg10=1.25 avg60=0.50 avg300=0.07 total=123456\n"
				   "full avg10=0.00 avg60=100.00 avg300=0.00 total=42\n";
	struct psi_memory p;

	CHECK_EQ(psi_parse(real, strlen(real), &p), 0);
	CHECK(p.some.avg10 > 1.249 && p.some.avg10 < 1.251);
	CHECK(p.some.avg300 > 0.069 && p.some.avg300 < 0.071);
	CHECK(p.some.total == 123456 && p.have_full && p.full.total == 42);
	CHECK(p.full.avg60 > 99.99);
	CHECK_EQ(psi_parse(real, 52, &p), 0); /* "some" line only */
	CHECK(!p.have_full);

	static const struct {
		const char *text;
		int rc;
	} rows[] = {
		{ "", -ENODATA },
		{ "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", -ENODATA },
		{ "some avg10=0.00 avg60=0.00 avg300=0.00\n", -EINVAL },
		{ "some avg10=0.00 avg60=0.00 avg300=0.00 total=", -EINVAL },
		{ "some avg10=101.00 avg60=0.00 avg300=0.00 total=0\n", -ERANGE },
		{ "some avg10=100.01 avg60=0.00 avg300=0.00 total=0\n", -ERANGE },
		{ "some avg10=abc avg60=0.00 avg300=0.00 total=0\n", -EINVAL },
		{ "some avg10=1. avg60=0.00 avg300=0.00 total=0\n", -EINVAL },
		{ "some avg60=0.00 avg10=0.00 avg300=0.00 total=0\n", -EINVAL },
		{ "some avg10=0.00 avg60=0.00 avg300=0.00 total=99999999999999999999\n", -ERANGE },
		{ "some avg10=0.00 avg60=0.00 avg300=0.00 total=1 x\n", -EINVAL },
		{ "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n"
		  "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n", -EINVAL },
		{ "other avg10=0.00\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=1\n", -EINVAL },
	};
	for (size_t i = 0; i < N(rows); i++) {
		int rc = psi_parse(rows[i].text, strlen(rows[i].text), &p);
		if (rc != rows[i].rc)
			fprintf(stderr, "  row %zu: rc %d\n", i, rc);
		CHECK_EQ(rc, rows[i].rc);
		CHECK(p.some.total == 0 && !p.have_full);
	}
}

/* ---- low-memory killer ------------------------------------------------------ */

TEST(lmk_lists)
{
	uint64_t pages[LMK_MAX_LEVELS];
	int adj[LMK_MAX_LEVELS];
	struct lmk_table t;
	struct lmk_thresholds th;
	unsigned n, na;
	static const char minfree[] = "18432,23040,27648,32256,55296,80640\n";

	CHECK_EQ(lmk_parse_minfree(minfree, strlen(minfree), pages, LMK_MAX_LEVELS, &n), 0);
	CHECK_EQ(n, 6);
	CHECK(pages[0] == 18432 && pages[5] == 80640);

	CHECK_EQ(lmk_parse_adj("0,100,200,250,900,950\n", 22, adj, LMK_MAX_LEVELS, &na), 0);
	CHECK(na == 6 && adj[2] == 200 && adj[5] == 950);
	CHECK_EQ(lmk_table_build(pages, n, adj, na, 4096, &t), 0);
	CHECK_EQ(lmk_thresholds_derive(&t, &th), 0);
	CHECK(th.perceptible_bytes == 27648 * 4096ULL); /* 108 MiB */
	CHECK(th.cached_bytes == 55296 * 4096ULL);      /* 216 MiB */

	/* Old kernels: oom_adj values, converted as Android does. */
	CHECK_EQ(lmk_parse_adj("0,1,2,4,9,15", 12, adj, LMK_MAX_LEVELS, &na), 0);
	CHECK(na == 6 && adj[0] == 0 && adj[1] == 58 && adj[2] == 117 && adj[3] == 235 &&
	      adj[4] == 529 && adj[5] == 1000);
	CHECK_EQ(lmk_table_build(pages, n, adj, na, 4096, &t), 0);
	CHECK_EQ(lmk_thresholds_derive(&t, &th), 0);
	CHECK(th.perceptible_bytes == 32256 * 4096ULL); /* first adj >= 200: 235 */
	CHECK(th.cached_bytes == 80640 * 4096ULL);      /* first adj >= 900: 1000 */
	CHECK_EQ(lmk_parse_adj("-17,-16,0", 9, adj, LMK_MAX_LEVELS, &na), 0);
	CHECK(adj[0] == -1000 && adj[1] == -941 && adj[2] == 0);

	/* No level reaches 900: the last (largest) threshold. Length mismatch: shorter. */
	static const int low_adj[] = { 0, 100 };
	CHECK_EQ(lmk_table_build(pages, 6, low_adj, 2, 4096, &t), 0);
	CHECK_EQ(t.n, 2);
	CHECK_EQ(lmk_thresholds_derive(&t, &th), 0);
	CHECK(th.perceptible_bytes == 23040 * 4096ULL && th.cached_bytes == 23040 * 4096ULL);

	/* The documented default table. */
	lmk_table_default(&t);
	CHECK_EQ(lmk_thresholds_derive(&t, &th), 0);
	CHECK(th.perceptible_bytes == 108 * MIB && th.cached_bytes == 216 * MIB);
}

TEST(lmk_malformed)
{
	static const struct {
		const char *text;
		bool adj;
		int rc;
	} rows[] = {
		{ "", false, -ENODATA },
		{ "\n", true, -ENODATA },
		{ "1,,2", false, -EINVAL },
		{ "1,2,", false, -EINVAL },
		{ ",1", false, -EINVAL },
		{ "a", false, -EINVAL },
		{ "1 2", false, -EINVAL },
		{ "-1", false, -ERANGE },
		{ "1099511627776", false, -ERANGE },
		{ "99999999999999999999999", false, -ERANGE },
		{ "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", false, -EINVAL },
		{ "-18,0", true, -ERANGE },
		{ "0,2000", true, -ERANGE },
		{ "0,-1001", true, -ERANGE },
		{ "0,--1", true, -EINVAL },
	};
	uint64_t pages[LMK_MAX_LEVELS];
	int adj[LMK_MAX_LEVELS];
	unsigned n = 99;
	struct lmk_table t;
	struct lmk_thresholds th;

	for (size_t i = 0; i < N(rows); i++) {
		size_t len = strlen(rows[i].text);
		int rc = rows[i].adj ? lmk_parse_adj(rows[i].text, len, adj, LMK_MAX_LEVELS, &n)
				     : lmk_parse_minfree(rows[i].text, len, pages, LMK_MAX_LEVELS, &n);
		if (rc != rows[i].rc)
			fprintf(stderr, "  row %zu: rc %d\n", i, rc);
		CHECK_EQ(rc, rows[i].rc);
		CHECK_EQ(n, 0);
	}
	CHECK_EQ(lmk_table_build(pages, 0, adj, 3, 4096, &t), -ENODATA);
	CHECK_EQ(lmk_table_build(pages, 3, adj, 3, 0, &t), -EINVAL);
	memset(&t, 0, sizeof(t));
	CHECK_EQ(lmk_thresholds_derive(&t, &th), -ENODATA);
	t.n = 1;
	t.page_size = 1ULL << 40;
	t.minfree_pages[0] = (1ULL << 40) - 1;
	CHECK_EQ(lmk_thresholds_derive(&t, &th), -ERANGE);
}

/* ---- oom_score_adj ------------------------------------------------------------ */

TEST(oom_score_adj)
{
	static const struct {
		const char *text;
		int rc, v;
	} rows[] = {
		{ "0\n", 0, 0 }, { "-1000\n", 0, -1000 }, { " 1000 ", 0, 1000 }, { "905", 0, 905 },
		{ "1001\n", -ERANGE, 0 }, { "-1001", -ERANGE, 0 }, { "", -EINVAL, 0 },
		{ "12x", -EINVAL, 0 }, { "1 2", -EINVAL, 0 }, { "+5", -EINVAL, 0 },
	};
	int v;

	for (size_t i = 0; i < N(rows); i++) {
		CHECK_EQ(oom_score_adj_parse(rows[i].text, strlen(rows[i].text), &v), rows[i].rc);
		CHECK_EQ(v, rows[i].v);
	}

	struct oom_class_config c;
	static const struct {
		int adj;
		enum oom_class cls;
	} cls[] = {
		{ -1000, OOM_CLASS_FOREGROUND }, { 0, OOM_CLASS_FOREGROUND },
		{ 100, OOM_CLASS_FOREGROUND },   { 200, OOM_CLASS_FOREGROUND },
		{ 201, OOM_CLASS_UNCHANGED },    { 500, OOM_CLASS_UNCHANGED },
		{ 899, OOM_CLASS_UNCHANGED },    { 900, OOM_CLASS_BACKGROUND },
		{ 1000, OOM_CLASS_BACKGROUND },
	};
	oom_class_config_default(&c);
	CHECK(c.fg_max == 200 && c.bg_min == 900);
	for (size_t i = 0; i < N(cls); i++)
		CHECK_EQ(oom_classify(&c, cls[i].adj), cls[i].cls);
	CHECK(oom_foreground_update(&c, 500, true) == true);
	CHECK(oom_foreground_update(&c, 500, false) == false);
	CHECK(oom_foreground_update(&c, 950, true) == false);
	CHECK(oom_foreground_update(&c, 100, false) == true);
	c.fg_max = 100;
	c.bg_min = 250;
	CHECK_EQ(oom_classify(&c, 200), OOM_CLASS_UNCHANGED);
	CHECK_EQ(oom_classify(&c, 250), OOM_CLASS_BACKGROUND);
}

/* ---- cgroup text ----------------------------------------------------------------- */

TEST(cgroup_self)
{
	struct cgroup_self s;
	char longp[SIG_PATH_MAX + 16];

	CHECK_EQ(cgroup_parse_self(self_cgroup_host, strlen(self_cgroup_host), &s), 0);
	CHECK(s.have_v1 && strcmp(s.v1_path, "/process_api/cdb90258984a590b2b328741280c7bfc") == 0);
	CHECK(s.have_v2 && strcmp(s.v2_path, "/") == 0);

	CHECK_EQ(cgroup_parse_self("0::/user.slice/app.scope\n", 25, &s), 0);
	CHECK(!s.have_v1 && s.have_v2 && strcmp(s.v2_path, "/user.slice/app.scope") == 0);
	CHECK_EQ(cgroup_parse_self("4:cpu,memory:/a:b\n", 18, &s), 0);
	CHECK(s.have_v1 && strcmp(s.v1_path, "/a:b") == 0 && !s.have_v2);
	CHECK_EQ(cgroup_parse_self("4:memoryx:/a\n1:cpu:/\n", 21, &s), -ENODATA);

	static const char *const bad[] = {
		"4:memory:relative\n", "garbage\n", "x:memory:/a\n", "4:memory\n",
		"4:memory:/a\n5:memory:/b\n", "0::/a\n0::/b\n", "4:memory:\n",
	};
	for (size_t i = 0; i < N(bad); i++) {
		CHECK_EQ(cgroup_parse_self(bad[i], strlen(bad[i]), &s), -EINVAL);
		CHECK(!s.have_v1 && !s.have_v2);
	}
	memcpy(longp, "4:memory:/", 10);
	memset(longp + 10, 'a', sizeof(longp) - 10);
	CHECK_EQ(cgroup_parse_self(longp, sizeof(longp), &s), -ENAMETOOLONG);
}

TEST(mountinfo_lines)
{
	struct mount_entry e;
	static const char mem[] = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory";
	static const char opt[] =
		"35 31 0:32 /docker/abc /sys/fs/cgroup/mem\\040ory rw shared:5 master:1 - cgroup cg rw,cpu,memory";
	static const char v2[] = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
	static const char nosrc[] = "41 31 0:38 / /x rw - cgroup2  rw";

	CHECK_EQ(mountinfo_parse_line(mem, strlen(mem), &e), 0);
	CHECK(strcmp(e.root, "/") == 0 && strcmp(e.mount_point, "/sys/fs/cgroup/memory") == 0);
	CHECK(strcmp(e.fstype, "cgroup") == 0 && e.opt_memory);
	CHECK_EQ(mountinfo_parse_line(opt, strlen(opt), &e), 0);
	CHECK(strcmp(e.root, "/docker/abc") == 0 &&
	      strcmp(e.mount_point, "/sys/fs/cgroup/mem ory") == 0 && e.opt_memory);
	CHECK_EQ(mountinfo_parse_line(v2, strlen(v2), &e), 0);
	CHECK(strcmp(e.fstype, "cgroup2") == 0 && !e.opt_memory);
	CHECK_EQ(mountinfo_parse_line(nosrc, strlen(nosrc), &e), 0);

	static const char *const bad[] = {
		"", "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime cgroup cgroup rw,memory",
		"35 31 0:32 / /m rw -", "35 31 0:32 / /m rw - cgroup", "35 31 0:32",
		"35 31 0:32 x /m rw - cgroup c rw", "35 31 0:32 / /m\\000 rw - cgroup c rw",
		"35 31 0:32 / /m rw - cgroup c rw extra",
	};
	for (size_t i = 0; i < N(bad); i++) {
		CHECK_EQ(mountinfo_parse_line(bad[i], strlen(bad[i]), &e), -EINVAL);
		CHECK(e.root[0] == 0);
	}
}

TEST(cgroup_locate_paths)
{
	struct cgroup_self s;
	char dir[SIG_PATH_MAX], mnt[SIG_PATH_MAX];

	CHECK_EQ(cgroup_parse_self(self_cgroup_host, strlen(self_cgroup_host), &s), 0);
	CHECK_EQ(cgroup_locate(&s, CGROUP_V1, mountinfo_host, strlen(mountinfo_host), NULL, dir,
			       sizeof(dir), mnt, sizeof(mnt)), 0);
	CHECK(strcmp(dir, "/sys/fs/cgroup/memory/process_api/cdb90258984a590b2b328741280c7bfc") == 0);
	CHECK(strcmp(mnt, "/sys/fs/cgroup/memory") == 0);
	CHECK_EQ(cgroup_locate(&s, CGROUP_V1, mountinfo_host, strlen(mountinfo_host), "/tmp/t", dir,
			       sizeof(dir), mnt, sizeof(mnt)), 0);
	CHECK(strncmp(dir, "/tmp/t/sys/fs/cgroup/memory/process_api/", 40) == 0);
	CHECK_EQ(cgroup_locate(&s, CGROUP_V2, mountinfo_host, strlen(mountinfo_host), NULL, dir,
			       sizeof(dir), mnt, sizeof(mnt)), 0);
	CHECK(strcmp(dir, "/sys/fs/cgroup/unified") == 0);
	CHECK_EQ(cgroup_locate(&s, CGROUP_V1, mountinfo_host, 100, NULL, dir, sizeof(dir), mnt,
			       sizeof(mnt)), -ENOENT);

	/* A container: the mount's root is our cgroup's ancestor. */
	static const char cont[] =
		"1 0 0:1 /docker/abcd /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
		"2 0 0:1 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
	CHECK_EQ(cgroup_parse_self("4:memory:/docker/abc/sub\n", 25, &s), 0);
	CHECK_EQ(cgroup_locate(&s, CGROUP_V1, cont, strlen(cont), NULL, dir, sizeof(dir), mnt,
			       sizeof(mnt)), 0);
	CHECK(strcmp(dir, "/sys/fs/cgroup/memory/sub") == 0);
	CHECK_EQ(cgroup_parse_self("4:memory:/docker/abc\n", 21, &s), 0);
	const char *second = strchr(cont, '\n') + 1;
	CHECK_EQ(cgroup_locate(&s, CGROUP_V1, second, strlen(second), NULL, dir, sizeof(dir), mnt,
			       sizeof(mnt)), 0);
	CHECK(strcmp(dir, "/sys/fs/cgroup/memory") == 0);
	CHECK_EQ(cgroup_parse_self("4:memory:/other\n", 16, &s), 0);
	CHECK_EQ(cgroup_locate(&s, CGROUP_V1, cont, strlen(cont), NULL, dir, sizeof(dir), mnt,
			       sizeof(mnt)), -ENOENT);
	CHECK_EQ(cgroup_locate(&s, CGROUP_V2, cont, strlen(cont), NULL, dir, sizeof(dir), mnt,
			       sizeof(mnt)), -ENOENT);
	CHECK_EQ(cgroup_parse_self(self_cgroup_host, strlen(self_cgroup_host), &s), 0);
	CHECK_EQ(cgroup_locate(&s, CGROUP_V1, mountinfo_host, strlen(mountinfo_host), NULL, dir, 20,
			       mnt, sizeof(mnt)), -ENAMETOOLONG);
}

TEST(cgroup_values)
{
	static const struct {
		const char *text;
		int rc;
		bool limited;
		uint64_t limit;
	} lim[] = {
		{ "max\n", 0, false, 0 },
		{ "9223372036854771712\n", 0, false, 0 },
		{ "4611686018427387904", 0, false, 0 },
		{ "4611686018427387903", 0, true, 4611686018427387903ULL },
		{ "536870912\n", 0, true, 536870912 },
		{ "99999999999999999999999\n", 0, false, 0 },
		{ "", -EINVAL, false, 0 },
		{ "maxx", -EINVAL, false, 0 },
		{ "-1", -EINVAL, false, 0 },
		{ "12 13", -EINVAL, false, 0 },
	};
	uint64_t v;
	bool limited;

	for (size_t i = 0; i < N(lim); i++) {
		CHECK_EQ(cgroup_parse_limit(lim[i].text, strlen(lim[i].text), &v, &limited), lim[i].rc);
		if (limited != lim[i].limited || v != lim[i].limit)
			fprintf(stderr, "  row %zu: %d %llu\n", i, limited, (unsigned long long)v);
		CHECK(limited == lim[i].limited && v == lim[i].limit);
	}
	CHECK_EQ(cgroup_parse_u64("3203072\n", 8, &v), 0);
	CHECK(v == 3203072);
	CHECK_EQ(cgroup_parse_u64("3203072x", 8, &v), -EINVAL);
	CHECK_EQ(cgroup_parse_u64("99999999999999999999", 20, &v), -ERANGE);
	CHECK(v == 0);

	CHECK_EQ(cgroup_parse_keyed(v1_stat, strlen(v1_stat), "total_inactive_file", &v), 0);
	CHECK(v == 16384);
	CHECK_EQ(cgroup_parse_keyed(v1_stat, strlen(v1_stat), "inactive_file", &v), 0);
	CHECK(v == 8192);
	static const char events[] = "low 0\nhigh 5\nmax 2\noom 1\noom_kill 3\noom_group_kill 0\n";
	CHECK_EQ(cgroup_parse_keyed(events, strlen(events), "oom_kill", &v), 0);
	CHECK(v == 3);
	CHECK_EQ(cgroup_parse_keyed(events, strlen(events), "oom", &v), 0);
	CHECK(v == 1);
	CHECK_EQ(cgroup_parse_keyed(events, strlen(events), "nope", &v), -ENOENT);
	CHECK_EQ(cgroup_parse_keyed("oom_kill x\n", 11, "oom_kill", &v), -EINVAL);
	CHECK_EQ(cgroup_parse_keyed("oom_kill 1\noom_kill 2\n", 22, "oom_kill", &v), -EINVAL);
	CHECK_EQ(cgroup_parse_keyed("oom_kill", 8, "oom_kill", &v), -EINVAL);
	CHECK(v == 0);
}

TEST(host_free_rule)
{
	static const struct {
		uint64_t avail;
		bool limited;
		uint64_t limit, usage, file, expect;
	} rows[] = {
		{ 1000 * MIB, false, 0, 0, 0, 1000 * MIB },
		{ 1000 * MIB, true, 512 * MIB, 400 * MIB, 20 * MIB, 132 * MIB },
		{ 100 * MIB, true, 512 * MIB, 400 * MIB, 20 * MIB, 100 * MIB },
		{ 1000 * MIB, true, 512 * MIB, 600 * MIB, 20 * MIB, 0 },
		{ 1000 * MIB, true, 512 * MIB, 530 * MIB, 20 * MIB, 2 * MIB },
		{ 1000 * MIB, true, UINT64_MAX, 0, UINT64_MAX, 1000 * MIB },
	};
	for (size_t i = 0; i < N(rows); i++)
		CHECK(host_free_bytes(rows[i].avail, rows[i].limited, rows[i].limit, rows[i].usage,
				      rows[i].file) == rows[i].expect);
}

int main(void)
{
	RUN(meminfo_real);
	RUN(meminfo_malformed);
	RUN(zoneinfo_real);
	RUN(zoneinfo_malformed);
	RUN(psi_real_and_malformed);
	RUN(lmk_lists);
	RUN(lmk_malformed);
	RUN(oom_score_adj);
	RUN(cgroup_self);
	RUN(mountinfo_lines);
	RUN(cgroup_locate_paths);
	RUN(cgroup_values);
	RUN(host_free_rule);
	TEST_MAIN_END();
}
