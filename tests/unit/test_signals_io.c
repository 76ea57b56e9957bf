/*
 * The host-pressure signal readers against fake /proc, /sys and cgroup
 * trees in a mkdtemp() directory (cgroup v1 and v2 detection and sampling,
 * pressure fds, lmk files, the combined sample, PSI triggers), then a smoke
 * test on the real host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "balloon/signals.h"
#include "harness.h"
#include "signals_fixtures.h"

/* ---- fake trees ----------------------------------------------------------------- */

static char tmp_root[64];

static void put(const char *rel, const char *content)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp_root, rel);
	for (char *p = path + strlen(tmp_root) + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(path, 0755);
			*p = '/';
		}
	}
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(content, f);
		fclose(f);
	}
}

static void slurp(const char *rel, char *buf, size_t cap)
{
	char path[1024];
	FILE *f;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/%s", tmp_root, rel);
	f = fopen(path, "r");
	if (f) {
		n = fread(buf, 1, cap - 1, f);
		fclose(f);
	}
	buf[n] = 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

static void tree_new(struct host_paths *hp, char *proc, char *sys)
{
	if (tmp_root[0])
		nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	strcpy(tmp_root, "/tmp/pocketvm-signals-XXXXXX");
	CHECK(mkdtemp(tmp_root) != NULL);
	sprintf(proc, "%s/proc", tmp_root);
	sprintf(sys, "%s/sys", tmp_root);
	hp->proc = proc;
	hp->sys = sys;
	hp->cgroup_root_override = tmp_root;
}

#define V1DIR "sys/fs/cgroup/memory/process_api/x"

static void tree_v1(void)
{
	put("proc/self/cgroup", "5:devices:/\n4:memory:/process_api/x\n0::/\n");
	put("proc/self/mountinfo", mountinfo_host);
	put(V1DIR "/memory.limit_in_bytes", "536870912\n");
	put(V1DIR "/memory.usage_in_bytes", "419430400\n");
	put(V1DIR "/memory.stat",
	    "cache 1\ninactive_file 1\nhierarchical_memory_limit 402653184\ntotal_inactive_file 41943040\n");
	put(V1DIR "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
	put(V1DIR "/memory.pressure_level", "");
	put(V1DIR "/cgroup.event_control", "");
}

TEST(fake_cgroup_v1)
{
	struct host_paths hp;
	char proc[128], sys[128], buf[256], expect[600];
	struct cgroup_mem cg;
	struct cgroup_sample s;
	int fd, a = -1, b = -1;

	tree_new(&hp, proc, sys);
	tree_v1();
	CHECK_EQ(cgroup_open(&hp, &cg), 0);
	CHECK_EQ(cg.version, CGROUP_V1);
	snprintf(expect, sizeof(expect), "%s/%s", tmp_root, V1DIR);
	CHECK(strcmp(cg.dir, expect) == 0);
	CHECK_EQ(cgroup_read(&cg, &s), 0);
	CHECK(s.limited && s.limit == 384 * MIB); /* the hierarchy's limit is lower */
	CHECK(s.usage == 400 * MIB && s.have_file && s.file == 40 * MIB);
	CHECK(s.have_oom_kills && s.oom_kills == 2);

	fd = cgroup_pressure_fd(&cg, "medium");
	CHECK(fd >= 0);
	slurp(V1DIR "/cgroup.event_control", buf, sizeof(buf));
	CHECK(sscanf(buf, "%d %d medium", &a, &b) == 2);
	CHECK(a == fd && b >= 0 && b != fd);
	if (fd >= 0)
		close(fd);
	CHECK_EQ(cgroup_pressure_fd(&cg, "high"), -EINVAL);
	CHECK_EQ(cgroup_pressure_fd(&cg, "low,bogus"), -EINVAL);
	fd = cgroup_pressure_fd(&cg, "critical,hierarchy");
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);

	/* Unlimited, and a broken usage file. */
	put(V1DIR "/memory.limit_in_bytes", "9223372036854771712\n");
	put(V1DIR "/memory.stat", "hierarchical_memory_limit 9223372036854771712\n");
	CHECK_EQ(cgroup_read(&cg, &s), 0);
	CHECK(!s.limited && !s.have_file);
	put(V1DIR "/memory.usage_in_bytes", "lots\n");
	CHECK_EQ(cgroup_read(&cg, &s), -EINVAL);
	CHECK(s.usage == 0 && !s.limited);

	/* The memory hierarchy is not mounted: no v2 memory either -> -ENOENT. */
	put("proc/self/mountinfo", "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
	CHECK_EQ(cgroup_open(&hp, &cg), -ENOENT);
	CHECK_EQ(cg.version, CGROUP_NONE);
}

TEST(fake_cgroup_v2)
{
	struct host_paths hp;
	char proc[128], sys[128], buf[256];
	struct cgroup_mem cg;
	struct cgroup_sample s;
	int fd;

	tree_new(&hp, proc, sys);
	put("proc/self/cgroup", "0::/user.slice/app.scope\n");
	put("proc/self/mountinfo", "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
	put("sys/fs/cgroup/memory.pressure", "");
	put("sys/fs/cgroup/user.slice/memory.max", "1073741824\n");
	put("sys/fs/cgroup/user.slice/memory.high", "max\n");
	put("sys/fs/cgroup/user.slice/app.scope/memory.max", "max\n");
	put("sys/fs/cgroup/user.slice/app.scope/memory.high", "805306368\n");
	put("sys/fs/cgroup/user.slice/app.scope/memory.current", "734003200\n");
	put("sys/fs/cgroup/user.slice/app.scope/memory.stat", "anon 1\nfile 2\ninactive_file 52428800\n");
	put("sys/fs/cgroup/user.slice/app.scope/memory.events",
	    "low 0\nhigh 7\nmax 0\noom 0\noom_kill 0\n");
	CHECK_EQ(cgroup_open(&hp, &cg), 0);
	CHECK_EQ(cg.version, CGROUP_V2);
	CHECK(strstr(cg.dir, "/sys/fs/cgroup/user.slice/app.scope") != NULL);
	CHECK_EQ(cgroup_read(&cg, &s), 0);
	CHECK(s.limited && s.limit == 768 * MIB); /* our memory.high */
	CHECK(s.usage == 700 * MIB && s.file == 50 * MIB && s.have_oom_kills && s.oom_kills == 0);

	put("sys/fs/cgroup/user.slice/memory.max", "629145600\n"); /* parent's max binds */
	CHECK_EQ(cgroup_read(&cg, &s), 0);
	CHECK(s.limit == 600 * MIB);
	put("sys/fs/cgroup/user.slice/memory.max", "max\n");
	put("sys/fs/cgroup/user.slice/app.scope/memory.high", "max\n");
	CHECK_EQ(cgroup_read(&cg, &s), 0);
	CHECK(!s.limited);
	/* The mount's own directory counts: in a cgroup namespace it is the container. */
	put("sys/fs/cgroup/memory.max", "1073741824\n");
	CHECK_EQ(cgroup_read(&cg, &s), 0);
	CHECK(s.limited && s.limit == 1024 * MIB);

	fd = cgroup_pressure_fd(&cg, "low");
	CHECK(fd >= 0);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		CHECK(n > 0 && memcmp(buf, "low 0\nhigh 7", 12) == 0);
		close(fd);
	}
	CHECK_EQ(cgroup_pressure_fd(&cg, "nope"), -EINVAL);

	/* This development host: v2 at the root without the memory controller. */
	put("proc/self/cgroup", "0::/\n");
	CHECK_EQ(cgroup_open(&hp, &cg), -ENOENT);
	put("proc/self/cgroup", "1:cpu:/\n");
	CHECK_EQ(cgroup_open(&hp, &cg), -ENOENT);
	hp.proc = "/nonexistent-pocketvm";
	CHECK_EQ(cgroup_open(&hp, &cg), -ENOENT);
}

TEST(fake_host_sample)
{
	struct host_paths hp;
	char proc[128], sys[128], zones[16384];
	struct host_reader r;
	struct host_sample s;

	tree_new(&hp, proc, sys);
	tree_v1();
	zone_text(zones, sizeof(zones), host_wm, 5, 1);
	put("proc/meminfo", meminfo_host);
	put("proc/zoneinfo", zones);
	put("proc/pressure/memory", "some avg10=12.50 avg60=3.00 avg300=1.00 total=999\n"
				    "full avg10=2.00 avg60=0.00 avg300=0.00 total=5\n");
	put("proc/self/oom_score_adj", "905\n");
	put("sys/module/lowmemorykiller/parameters/minfree", "1024,2048,4096,8192\n");
	put("sys/module/lowmemorykiller/parameters/adj", "0,4,9,15\n");

	CHECK_EQ(host_reader_init(&r, &hp, NULL), 0);
	CHECK(r.have_cg && r.lmk.from_kernel);
	CHECK_EQ(host_sample_read(&r, &s), 0);
	CHECK(s.mem_total == 24731708 * KB && s.mem_available == 24310184 * KB);
	CHECK(s.have_zones && s.zone_low_sum == (38 + 7818 + 13260 + 32) * r.page_size);
	CHECK(s.have_psi && s.psi_some_avg10 > 12.49 && s.psi_full_total == 5);
	CHECK(s.have_cg && s.cg_limited && s.cg_limit == 384 * MIB && s.cg_usage == 400 * MIB);
	CHECK(s.cg_oom_kills == 2);
	CHECK(s.have_oom_score_adj && s.oom_score_adj == 905);
	/* adj 0,4,9,15 is oom_adj: 0,235,529,1000 -> perceptible 2048 pages, cached 8192. */
	CHECK(s.perceptible_bytes == 2048 * r.page_size && s.cached_bytes == 8192 * r.page_size);
	/* Limited cgroup: 384 - 400 + 40 = 24 MiB, far below MemAvailable. */
	CHECK(s.host_free == 24 * MIB);
	host_reader_close(&r);

	/* No lmk driver, no PSI, no cgroup, old meminfo: fallbacks and flags. */
	tree_new(&hp, proc, sys);
	put("proc/meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\n"
			    "Cached: 500 kB\nShmem: 200 kB\n");
	put("proc/zoneinfo", "Node 0, zone DMA\n");
	put("proc/self/cgroup", "0::/\n");
	put("proc/self/mountinfo", mountinfo_host);
	CHECK_EQ(host_reader_init(&r, &hp, NULL), 0);
	CHECK(!r.have_cg && !r.lmk.from_kernel);
	CHECK(r.lmk.perceptible_bytes == 108 * MIB && r.lmk.cached_bytes == 216 * MIB);
	CHECK_EQ(host_sample_read(&r, &s), 0);
	CHECK(s.mem_available == 410 * KB && s.host_free == 410 * KB); /* 100 + 10 + 500 - 200 */
	CHECK(!s.have_psi && !s.have_zones && !s.have_cg && !s.have_oom_score_adj);
	host_reader_close(&r);

	/* A configured table instead of the default; broken kernel files fall back to it. */
	struct lmk_table t;
	lmk_table_default(&t);
	t.minfree_pages[2] = 1000;
	put("sys/module/lowmemorykiller/parameters/minfree", "1,2,x\n");
	put("sys/module/lowmemorykiller/parameters/adj", "0,1,2\n");
	CHECK_EQ(host_reader_init(&r, &hp, &t), 0);
	CHECK(!r.lmk.from_kernel && r.lmk.perceptible_bytes == 1000 * 4096ULL);
	/* meminfo is required. */
	put("proc/meminfo", "MemTotal: 1000 kB\n");
	CHECK_EQ(host_sample_read(&r, &s), -ENODATA);
	host_reader_close(&r);
	host_reader_close(&r); /* twice is safe */
}

TEST(fake_psi_trigger)
{
	struct host_paths hp;
	char proc[128], sys[128], buf[64];
	int fd;

	tree_new(&hp, proc, sys);
	put("proc/pressure/memory", "");
	fd = psi_trigger_open(&hp, "some", 150000, 1000000);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	slurp("proc/pressure/memory", buf, sizeof(buf));
	CHECK(strcmp(buf, "some 150000 1000000") == 0); /* followed by the NUL */
	CHECK_EQ(psi_trigger_open(&hp, "both", 1, 2), -EINVAL);
	CHECK_EQ(psi_trigger_open(&hp, NULL, 1, 2), -EINVAL);
	CHECK_EQ(psi_trigger_open(&hp, "full", 0, 2), -EINVAL);
	CHECK_EQ(psi_trigger_open(&hp, "full", 3, 2), -EINVAL);
	hp.proc = "/nonexistent-pocketvm";
	CHECK_EQ(psi_trigger_open(&hp, "full", 700000, 1000000), -ENOENT);
}

/* The real host: whatever it has, the readers agree with themselves. */
TEST(live_host)
{
	struct host_reader r;
	struct host_sample s;
	struct host_paths hp;
	struct cgroup_mem cg;
	struct cgroup_sample cs;
	int fd, rc;

	host_paths_default(&hp);
	CHECK_EQ(host_reader_init(&r, NULL, NULL), 0);
	CHECK_EQ(host_sample_read(&r, &s), 0);
	CHECK(s.mem_total > 0 && s.mem_available <= s.mem_total && s.host_free <= s.mem_available);
	CHECK(!s.have_zones || s.zone_low_sum >= s.zone_min_sum);
	CHECK(s.have_oom_score_adj && s.oom_score_adj >= -1000 && s.oom_score_adj <= 1000);
	printf("  host: free %llu MiB, zone low %llu MiB, psi %d, cgroup %d, lmk from kernel %d\n",
	       (unsigned long long)(s.host_free >> 20), (unsigned long long)(s.zone_low_sum >> 20),
	       s.have_psi, s.have_cg, r.lmk.from_kernel);
	host_reader_close(&r);

	rc = cgroup_open(&hp, &cg);
	CHECK(rc == 0 || rc == -ENOENT);
	if (rc == 0) {
		CHECK_EQ(cgroup_read(&cg, &cs), 0);
		fd = cgroup_pressure_fd(&cg, "critical");
		printf("  host: cgroup v%d %s, limited %d, usage %llu, pressure fd %d\n",
		       cg.version, cg.dir, cs.limited, (unsigned long long)cs.usage, fd);
		CHECK(fd >= 0 || fd == -EACCES || fd == -EPERM || fd == -ENOENT);
		if (fd >= 0)
			close(fd);
	}
	/* Unprivileged kernels refuse windows that are not multiples of 2 s. */
	for (unsigned window = 1000000; window <= 2000000; window += 1000000) {
		fd = psi_trigger_open(&hp, "some", 150000, window);
		printf("  host: psi trigger, %u s window: %d\n", window / 1000000, fd);
		CHECK(fd >= 0 || fd == -EINVAL || fd == -EPERM || fd == -EACCES || fd == -ENOENT ||
		      fd == -EOPNOTSUPP);
		if (fd >= 0) {
			struct pollfd p = { .fd = fd, .events = POLLPRI };
			CHECK(poll(&p, 1, 0) >= 0);
			close(fd);
		}
	}
}

int main(void)
{
	RUN(fake_cgroup_v1);
	RUN(fake_cgroup_v2);
	RUN(fake_host_sample);
	RUN(fake_psi_trigger);
	RUN(live_host);
	if (tmp_root[0])
		nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	TEST_MAIN_END();
}
