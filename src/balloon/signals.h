/*
 * Host memory-pressure signals for the balloon policy.
 *
 * Two layers. Pure parsers turn the text of one kernel file (given as a
 * buffer and a length, not necessarily NUL-terminated) into numbers; they
 * never touch the file system and are unit-tested and fuzzed. A thin I/O
 * layer reads the files under injectable roots (struct host_paths), so
 * tests point it at a fake tree in a temporary directory.
 *
 * Error codes of the parsers: -EINVAL malformed text (truncated line, bad
 * number, duplicate key), -ERANGE a number out of range or an overflow when
 * scaling to bytes, -ENODATA a required field is missing. On error the
 * output is zeroed, never partly filled. All sizes are bytes.
 */
#ifndef POCKETVM_BALLOON_SIGNALS_H
#define POCKETVM_BALLOON_SIGNALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIG_PATH_MAX 512

/*
 * Where the kernel's files live. proc and sys default to "/proc" and "/sys".
 * cgroup_root_override, when non-NULL, is the directory against which the
 * mount points found in <proc>/self/mountinfo are resolved (it is prepended
 * to them: "/tmp/t" + "/sys/fs/cgroup/memory"); NULL uses them as they are.
 * The strings must outlive every object initialised from this struct.
 */
struct host_paths {
	const char *proc;
	const char *sys;
	const char *cgroup_root_override;
};

/* host_paths_default - "/proc", "/sys", no override. */
void host_paths_default(struct host_paths *p);

/* ---- /proc/meminfo ---------------------------------------------------- */

struct meminfo {
	uint64_t mem_total, mem_free, mem_available;
	uint64_t buffers, cached, shmem;
	uint64_t swap_total, swap_free;
	bool have_available; /* MemAvailable exists since Linux 3.14 */
};

/*
 * meminfo_parse - parse /proc/meminfo ("Key:   N kB" lines; kB -> bytes).
 * MemTotal and MemFree are required (-ENODATA); the other fields are 0 when
 * absent. A known key with a malformed value or unit, a duplicate known
 * key, or MemFree > MemTotal is -EINVAL; unknown lines are ignored.
 */
int meminfo_parse(const char *buf, size_t len, struct meminfo *m);

/* ---- /proc/zoneinfo --------------------------------------------------- */

struct zone_watermarks {
	uint64_t min, low, high; /* bytes, summed over every zone of every node */
	unsigned zones;
};

/*
 * zoneinfo_parse - sum the min, low and high watermarks (pages, scaled by
 * @page_size) of every "Node N, zone NAME" block, empty zones included.
 * Within a zone the first "min N", "low N" and "high N" lines count (later
 * ones, e.g. in other sections, are ignored); a zone lacking any of the
 * three, or a malformed header, is -EINVAL; no zone at all is -ENODATA.
 */
int zoneinfo_parse(const char *buf, size_t len, uint64_t page_size, struct zone_watermarks *z);

/* ---- /proc/pressure/memory (PSI) --------------------------------------- */

struct psi_line {
	double avg10, avg60, avg300; /* percent of wall time, 0..100 */
	uint64_t total;              /* microseconds stalled since boot */
};

struct psi_memory {
	struct psi_line some, full;
	bool have_full; /* "full" is absent for some resources/kernels */
};

/*
 * psi_parse - parse "some avg10=A avg60=B avg300=C total=N" and the optional
 * "full ..." line. "some" is required (-ENODATA); averages above 100 are
 * -ERANGE; a duplicate or malformed line is -EINVAL.
 */
int psi_parse(const char *buf, size_t len, struct psi_memory *p);

/*
 * psi_trigger_open - register a PSI trigger on <proc>/pressure/memory: open
 * it O_RDWR|O_NONBLOCK|O_CLOEXEC and write "<kind> <stall_us> <window_us>".
 * @kind is "some" or "full". The returned fd reports POLLPRI each time the
 * stall in a window exceeds @stall_us; closing it removes the trigger.
 * Returns the fd, -EINVAL for a bad kind or stall_us == 0 or
 * stall_us > window_us, or the kernel's -errno (unprivileged processes may
 * only use windows that are multiples of 2 s: the caller then falls back to
 * reading the averages).
 */
int psi_trigger_open(const struct host_paths *p, const char *kind, unsigned stall_us,
		     unsigned window_us);

/* ---- Android low-memory-killer thresholds ----------------------------- */

#define LMK_MAX_LEVELS 16
#define LMK_PERCEPTIBLE_ADJ 200 /* Android's PERCEPTIBLE_APP_ADJ */
#define LMK_CACHED_ADJ 900      /* Android's CACHED_APP_MIN_ADJ */

/*
 * Levels in the driver's order (ascending): a process with oom_score_adj >=
 * score_adj[i] may be killed when free memory < minfree_pages[i] pages.
 */
struct lmk_table {
	unsigned n;
	uint64_t page_size;
	uint64_t minfree_pages[LMK_MAX_LEVELS];
	int score_adj[LMK_MAX_LEVELS]; /* -1000..1000 */
};

struct lmk_thresholds {
	uint64_t perceptible_bytes; /* minfree of the first level with adj >= 200 */
	uint64_t cached_bytes;      /* minfree of the first level with adj >= 900 */
	bool from_kernel;           /* false: from the fallback table */
};

/*
 * lmk_table_default - Android's classic table, used when the kernel has no
 * lowmemorykiller driver: 18432, 23040, 27648, 32256, 55296, 80640 pages of
 * 4 KiB for oom_score_adj 0, 100, 200, 250, 900, 950, that is perceptible
 * 108 MiB and cached 216 MiB.
 */
void lmk_table_default(struct lmk_table *t);

/*
 * lmk_parse_minfree - parse a comma-separated list of page counts
 * ("18432,23040,...\n") into @pages[0..*n). More than @max entries, an
 * empty entry or a non-number is -EINVAL; a value >= 2^40 pages -ERANGE;
 * an empty list -ENODATA.
 */
int lmk_parse_minfree(const char *buf, size_t len, uint64_t *pages, unsigned max, unsigned *n);

/*
 * lmk_parse_adj - parse the comma-separated "adj" parameter into
 * oom_score_adj values. When every value is <= 15 the list is taken as old
 * oom_adj values (-17..15) and converted as Android does: 15 -> 1000,
 * otherwise adj * 1000 / 17. Values outside -1000..1000 (or -17..15 for
 * oom_adj) are -ERANGE; syntax errors as lmk_parse_minfree.
 */
int lmk_parse_adj(const char *buf, size_t len, int *score_adj, unsigned max, unsigned *n);

/*
 * lmk_table_build - combine parsed lists. Like the kernel driver, a length
 * mismatch uses the shorter list. Returns 0, -ENODATA if empty, -EINVAL if
 * @page_size is 0.
 */
int lmk_table_build(const uint64_t *pages, unsigned npages, const int *adj, unsigned nadj,
		    uint64_t page_size, struct lmk_table *t);

/*
 * lmk_thresholds_derive - perceptible_bytes and cached_bytes of @t (see
 * struct lmk_thresholds; from_kernel is left false). When no level reaches
 * the adj, the last level's minfree is used (the largest threshold).
 * Returns 0, -ENODATA for an empty table, -ERANGE on overflow.
 */
int lmk_thresholds_derive(const struct lmk_table *t, struct lmk_thresholds *out);

/*
 * lmk_read - read <sys>/module/lowmemorykiller/parameters/{minfree,adj}
 * (pages of the host page size @page_size). When the files are absent or
 * unusable, derive from @fallback (NULL: lmk_table_default). Returns 0, or
 * a negative errno only if the fallback itself is unusable.
 */
int lmk_read(const struct host_paths *p, uint64_t page_size, const struct lmk_table *fallback,
	     struct lmk_thresholds *out);

/* ---- oom_score_adj: foreground or background ------------------------- */

enum oom_class {
	OOM_CLASS_UNCHANGED,  /* between the thresholds: keep the previous state */
	OOM_CLASS_FOREGROUND, /* score_adj <= fg_max */
	OOM_CLASS_BACKGROUND, /* score_adj >= bg_min */
};

struct oom_class_config {
	int fg_max; /* default 200: visible apps are 100, perceptible 200 */
	int bg_min; /* default 900: cached apps */
};

/* oom_class_config_default - fg_max 200, bg_min 900. */
void oom_class_config_default(struct oom_class_config *c);

/* oom_classify - classify one oom_score_adj value. Pure. */
enum oom_class oom_classify(const struct oom_class_config *c, int score_adj);

/* oom_foreground_update - the new foreground flag after @score_adj. Pure. */
bool oom_foreground_update(const struct oom_class_config *c, int score_adj, bool was_foreground);

/*
 * oom_score_adj_parse - one decimal integer -1000..1000 with optional
 * surrounding white space. -EINVAL malformed, -ERANGE out of range.
 */
int oom_score_adj_parse(const char *buf, size_t len, int *score_adj);

/* oom_score_adj_read - read <proc>/self/oom_score_adj. 0 or negative errno. */
int oom_score_adj_read(const struct host_paths *p, int *score_adj);

/* ---- memory cgroup ---------------------------------------------------- */

enum cgroup_version { CGROUP_NONE = 0, CGROUP_V1 = 1, CGROUP_V2 = 2 };

/* What /proc/self/cgroup says about the memory controller. */
struct cgroup_self {
	bool have_v1;                /* "N:...memory...:/path" */
	char v1_path[SIG_PATH_MAX];
	bool have_v2;                /* "0::/path" */
	char v2_path[SIG_PATH_MAX];
};

/*
 * cgroup_parse_self - parse /proc/self/cgroup ("ID:CONTROLLERS:PATH" lines;
 * the path is everything after the second colon). A v1 line counts when
 * "memory" is one of its comma-separated controllers. Paths must start with
 * '/'. -EINVAL malformed, -ENAMETOOLONG path too long, -ENODATA neither
 * found.
 */
int cgroup_parse_self(const char *buf, size_t len, struct cgroup_self *s);

struct mount_entry {
	char root[SIG_PATH_MAX];       /* field 4, octal escapes decoded */
	char mount_point[SIG_PATH_MAX];
	char fstype[32];
	bool opt_memory;               /* "memory" among the super options */
};

/*
 * mountinfo_parse_line - parse one /proc/self/mountinfo line (no newline):
 * "ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTS [OPTIONAL...] - FSTYPE SOURCE
 * SUPER_OPTS". -EINVAL malformed, -ENAMETOOLONG a path too long.
 */
int mountinfo_parse_line(const char *line, size_t len, struct mount_entry *e);

/*
 * cgroup_locate - the directory of the memory cgroup of @version (V1 or
 * V2) from @self and the text of mountinfo: the first cgroup mount ("cgroup"
 * with the memory option, or "cgroup2") whose root is a prefix of our path,
 * joined as mount_point + (path - root), prefixed by @root_override when not
 * NULL. Malformed mountinfo lines are skipped. Returns 0, -ENOENT when there
 * is no such mount, -ENAMETOOLONG.
 */
int cgroup_locate(const struct cgroup_self *self, enum cgroup_version version,
		  const char *mountinfo, size_t len, const char *root_override, char *dir,
		  size_t dirlen, char *mnt, size_t mntlen);

/*
 * cgroup_parse_limit - a limit file: "max" (v2) or a number; values >= 2^62
 * (v1 prints 9223372036854771712 for none) mean unlimited (*limited false,
 * *limit 0). -EINVAL malformed.
 */
int cgroup_parse_limit(const char *buf, size_t len, uint64_t *limit, bool *limited);

/* cgroup_parse_u64 - a file holding one unsigned number. -EINVAL, -ERANGE. */
int cgroup_parse_u64(const char *buf, size_t len, uint64_t *v);

/*
 * cgroup_parse_keyed - the value of @key in a flat-keyed file ("key value"
 * lines: memory.stat, memory.events, memory.oom_control). -ENOENT if the key
 * is absent, -EINVAL if its line is malformed or repeated. Other lines are
 * not checked.
 */
int cgroup_parse_keyed(const char *buf, size_t len, const char *key, uint64_t *v);

struct cgroup_mem {
	enum cgroup_version version;
	char dir[SIG_PATH_MAX]; /* our cgroup's directory */
	char mnt[SIG_PATH_MAX]; /* the hierarchy's mount point (v2: the walk stops there) */
};

struct cgroup_sample {
	bool limited;        /* some limit applies */
	uint64_t limit;      /* v1: min(limit_in_bytes, hierarchical_memory_limit);
				v2: min of memory.max and memory.high up to the mount */
	uint64_t usage;      /* usage_in_bytes / memory.current */
	uint64_t file;       /* reclaimable file cache: (total_)inactive_file */
	bool have_file;
	uint64_t oom_kills;  /* oom_kill of memory.oom_control (v1) / memory.events (v2) */
	bool have_oom_kills;
};

/*
 * cgroup_open - find our memory cgroup: v1 when /proc/self/cgroup names a
 * memory hierarchy that is mounted and has memory.limit_in_bytes, else v2
 * when "0::" leads to a directory with memory.current (the v2 root cgroup
 * and hierarchies without the memory controller have none). Returns 0,
 * -ENOENT when there is none, or another negative errno.
 */
int cgroup_open(const struct host_paths *p, struct cgroup_mem *cg);

/* cgroup_read - sample limit, usage, file cache, oom kills. 0 or -errno. */
int cgroup_read(struct cgroup_mem *cg, struct cgroup_sample *s);

/*
 * cgroup_pressure_fd - an fd that wakes the caller on memory pressure.
 * v1: an eventfd registered through cgroup.event_control for
 * memory.pressure_level at @level ("low", "medium" or "critical", optionally
 * ",hierarchy" or ",local"); it becomes readable (an 8-byte counter) at that
 * level. v2: @level is checked the same way but the kernel has no levels:
 * the fd is memory.events opened read-only, which reports POLLPRI|POLLERR
 * whenever its counters (low, high, max, oom, oom_kill) change; re-read it
 * (pread at 0) after each wake-up. The caller owns and closes the fd.
 * Returns the fd, -EINVAL for a bad level, or -errno.
 */
int cgroup_pressure_fd(struct cgroup_mem *cg, const char *level);

/* ---- one sample of everything ---------------------------------------- */

struct host_sample {
	uint64_t mem_total, mem_free, mem_available;
	uint64_t zone_low_sum, zone_min_sum, zone_high_sum;
	bool have_zones;
	double psi_some_avg10, psi_full_avg10;
	uint64_t psi_some_total, psi_full_total;
	bool have_psi;
	bool have_cg;   /* we are in a memory cgroup and it could be read */
	bool cg_limited;
	uint64_t cg_limit, cg_usage, cg_file;
	uint64_t cg_oom_kills;
	int oom_score_adj;
	bool have_oom_score_adj;
	uint64_t perceptible_bytes, cached_bytes; /* lmk thresholds, read at init */
	uint64_t host_free; /* what the policy calls host free memory */
};

/*
 * host_free_bytes - the policy's "host free memory". Pure.
 * host_free = MemAvailable; inside a limited cgroup it is
 * min(MemAvailable, limit - usage + file), clamped at 0, because the cgroup
 * reclaims its own inactive file cache before it kills anything, while the
 * rest of its usage counts against the limit. Without MemAvailable (kernels
 * before 3.14) the caller passes MemFree + Buffers + Cached - Shmem.
 */
uint64_t host_free_bytes(uint64_t mem_available, bool cg_limited, uint64_t cg_limit,
			 uint64_t cg_usage, uint64_t cg_file);

struct host_reader {
	struct host_paths paths;
	uint64_t page_size;
	bool have_cg;
	struct cgroup_mem cg;
	struct lmk_thresholds lmk;
	char *buf; /* reused text buffer */
	size_t cap;
};

/*
 * host_reader_init - set up @r for @p (NULL: defaults): page size, our
 * memory cgroup if any, lmk thresholds (from the kernel, else @lmk_fallback,
 * NULL meaning lmk_table_default). Returns 0 or -errno (-ENOMEM).
 */
int host_reader_init(struct host_reader *r, const struct host_paths *p,
		     const struct lmk_table *lmk_fallback);

/* host_reader_close - free @r's buffer. Safe on a zeroed reader. */
void host_reader_close(struct host_reader *r);

/*
 * host_sample_read - read every signal into @s. meminfo is required (its
 * error is returned); zoneinfo, PSI, the cgroup and oom_score_adj are best
 * effort and flagged by have_*. Returns 0 or -errno.
 */
int host_sample_read(struct host_reader *r, struct host_sample *s);

#endif
