/*
 * Texts in the format of this development host's kernel files, shared by
 * test_signals.c (parsers) and test_signals_io.c (fake trees).
 */
#ifndef POCKETVM_TEST_SIGNALS_FIXTURES_H
#define POCKETVM_TEST_SIGNALS_FIXTURES_H

#include <stdio.h>
#include <string.h>

#define KB 1024ULL
#define MIB (1024ULL * 1024)
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- real-looking texts (this development host's format) ---------------- */

static const char __attribute__((unused)) meminfo_host[] =
	"MemTotal:       24731708 kB\n"
	"MemFree:        20900540 kB\n"
	"MemAvailable:   24310184 kB\n"
	"Buffers:           87492 kB\n"
	"Cached:          3376832 kB\n"
	"SwapCached:            0 kB\n"
	"Active:           633232 kB\n"
	"Inactive(file):  2823752 kB\n"
	"SwapTotal:             0 kB\n"
	"SwapFree:              0 kB\n"
	"Shmem:              8856 kB\n"
	"HugePages_Total:       0\n"
	"Hugepagesize:       2048 kB\n"
	"DirectMap1G:    25165824 kB\n";

static const char __attribute__((unused)) zone_tail[] =
	"        boost    0\n"
	"        promo    52\n"
	"        spanned  4095\n"
	"        present  3998\n"
	"        managed  3840\n"
	"        cma      0\n"
	"        protection: (0, 3019, 8139, 8139, 8139)\n"
	"      nr_free_pages 3840\n"
	"      numa_local   0\n"
	"  pagesets\n"
	"    cpu: 0\n"
	"              count: 0\n"
	"              high:  0\n"
	"              batch: 1\n"
	"  vm stats threshold: 4\n"
	"  node_unreclaimable:  0\n"
	"  start_pfn:           1\n";

static inline void zone_text(char *out, size_t cap, const unsigned (*wm)[3], unsigned n, unsigned nodes)
{
	size_t len = 0;
	static const char __attribute__((unused)) *const names[] = { "DMA", "DMA32", "Normal", "Movable", "Device" };

	out[0] = 0;
	for (unsigned node = 0; node < nodes; node++) {
		for (unsigned z = 0; z < n; z++) {
			len += (size_t)snprintf(out + len, cap - len, "Node %u, zone %8s\n", node,
						names[z % 5]);
			if (z == 0)
				len += (size_t)snprintf(out + len, cap - len,
							"  per-node stats\n      nr_inactive_anon 931\n"
							"      nr_file_pages 866081\n");
			len += (size_t)snprintf(out + len, cap - len,
						"  pages free     3840\n        min      %u\n"
						"        low      %u\n        high     %u\n%s",
						wm[z][0], wm[z][1], wm[z][2], zone_tail);
		}
	}
}

/* /proc/zoneinfo of the host: DMA, DMA32, Normal, Movable, Device (min low high). */
static const unsigned __attribute__((unused)) host_wm[5][3] = {
	{ 31, 38, 45 }, { 6255, 7818, 9381 }, { 10608, 13260, 15912 }, { 32, 32, 32 }, { 0, 0, 0 },
};

static const char __attribute__((unused)) mountinfo_host[] =
	"22 27 0:21 / /proc rw,relatime - proc proc rw\n"
	"23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n"
	"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static const char __attribute__((unused)) self_cgroup_host[] =
	"9:name=systemd:/\n8:pids:/\n5:devices:/\n"
	"4:memory:/process_api/cdb90258984a590b2b328741280c7bfc\n"
	"3:cpuset:/\n1:cpu:/\n0::/\n";

static const char __attribute__((unused)) v1_stat[] =
	"cache 16384\nrss 1675264\ninactive_file 8192\nactive_file 0\n"
	"hierarchical_memory_limit 9223372036854771712\n"
	"total_cache 16384\ntotal_inactive_file 16384\ntotal_active_file 0\n";

#endif
