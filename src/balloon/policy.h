/*
 * The balloon policy: given the host's and the guest's memory state, decide
 * the balloon target. Pure: no I/O, no clock (time comes in the input), all
 * memory in the state struct the caller owns.
 *
 * Guest pressure P(B) = U / (R - B): the share of the memory the guest still
 * has that it uses (R guest RAM, U bytes used outside the balloon, B bytes in
 * the balloon), equal to (total - free) / total in the guest's own stats
 * (or (total - available) / total, see policy_config.count_cache).
 *
 * Foreground (the guest has priority): deflate when P > fg_limit + band,
 * aiming at P = fg_limit - band, as far as host free stays >= perceptible +
 * margin; when host free is below perceptible, inflate back to perceptible +
 * margin without pushing P over bg_limit.
 * Background (the host has priority): inflate when host free < need - band,
 * need = max(cached, zone_low_sum) + margin, up to need, without pushing P
 * over bg_limit or B over balloon_max; deflate only when P > bg_limit + band,
 * aiming at bg_limit - band, as far as host free stays >= need.
 * Limits: max_step per decision (4x for inflation at CRITICAL host
 * pressure), min_interval between changes (not for a further inflation at
 * MEDIUM pressure or above), no reversal
 * of direction within reversal_hold (lifted for inflation at CRITICAL host
 * pressure, and when the app changed between foreground and background since
 * the last change, since the priority changed). A balloon whose actual size
 * grows slower than stall_rate for stall_window while below its target is
 * stalled: the target goes back to actual, no inflation for backoff_ns, and
 * the effective maximum is actual - stall_shrink for stall_cap_ns.
 * In background at CRITICAL pressure with the balloon at its limit (or
 * stalled), the decision is SUSPEND: the controller saves and exits.
 */
#ifndef POCKETVM_BALLOON_POLICY_H
#define POCKETVM_BALLOON_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Actions name the balloon's own direction, relative to balloon_actual. The
 * controller requests out->target whenever it differs from the current
 * target, whatever the action.
 */
enum policy_action {
	POLICY_HOLD,    /* no new move: out->target is the current target, or lower
			   but >= balloon_actual when a pending inflation must stop
			   (a stall, or a limit it now exceeds) */
	POLICY_INFLATE, /* out->target > balloon_actual */
	POLICY_DEFLATE, /* out->target < balloon_actual */
	POLICY_SUSPEND, /* save a snapshot and exit; target unchanged */
};

/* Host pressure, as the controller derives it from PSI and cgroup events. */
enum policy_pressure {
	POLICY_PRESSURE_NONE,
	POLICY_PRESSURE_SOME, /* PSI "some" trigger, cgroup v1 "low" */
	POLICY_PRESSURE_MEDIUM,
	POLICY_PRESSURE_CRITICAL,
};

struct policy_config {
	double fg_limit;           /* 0.75: foreground guest pressure limit */
	double bg_limit;           /* 0.95: guest pressure never pushed above */
	double pressure_band;      /* 0.03: hysteresis on guest pressure */
	uint64_t margin;           /* 64 MiB above perceptible / need */
	uint64_t host_free_band;   /* 16 MiB: hysteresis on host free */
	uint64_t max_step;         /* 128 MiB per decision */
	uint64_t min_interval_ns;  /* 1 s between two target changes */
	uint64_t reversal_hold_ns; /* 10 s before the direction may reverse */
	uint64_t stall_window_ns;  /* 3 s */
	uint64_t stall_rate;       /* 15 MB/s (bytes per second) */
	uint64_t backoff_ns;       /* 30 s without inflation after a stall */
	uint64_t stall_shrink;     /* 128 MiB: max lowered below the stall point */
	uint64_t stall_cap_ns;     /* 120 s: for this long */
	uint64_t guest_floor;      /* 64 MiB: default balloon_max = R - floor */
	uint64_t page_size;        /* 4096: targets are multiples of it */
	/*
	 * true (default, the 2014 design): U = guest_used, i.e. MemTotal -
	 * MemFree, so page cache counts as pressure. A Linux guest whose cache
	 * has filled its RAM then looks ~98% full and the bounds stop the
	 * balloon before the guest ever has to drop cache. false: U = (R - B) -
	 * guest_available (MemTotal - MemAvailable): the balloon may take the
	 * guest's reclaimable cache.
	 */
	bool count_cache;
};

struct policy_input {
	uint64_t now_ns;               /* monotonic */
	bool foreground;
	uint64_t host_free;            /* host_sample.host_free */
	uint64_t perceptible_threshold;
	uint64_t cached_threshold;
	uint64_t zone_low_sum;
	enum policy_pressure pressure;
	uint64_t guest_ram;            /* R */
	bool guest_stats_valid;
	uint64_t guest_used;           /* U: used by the guest, balloon excluded */
	uint64_t guest_available;      /* used instead of U when !count_cache */
	uint64_t balloon_actual;       /* B */
	uint64_t balloon_target;       /* the target now requested */
	uint64_t balloon_max;          /* 0: R - guest_floor */
	bool driver_ok;
};

struct policy_state {
	bool have_change;          /* a target change was issued */
	uint64_t last_change_ns;
	int last_dir;              /* +1 inflate, -1 deflate, 0 none */
	uint64_t last_dir_ns;
	bool last_foreground;      /* at last_dir_ns */
	bool tracking;             /* target > actual: watching the growth */
	uint64_t track_ns, track_actual;
	uint64_t backoff_until_ns; /* no inflation before this */
	uint64_t stall_cap;        /* effective max ... */
	uint64_t stall_cap_until_ns; /* ... until this */
	unsigned stalls;           /* count, for status */
};

struct policy_decision {
	enum policy_action action;
	uint64_t target; /* bytes, page aligned */
	char reason[192];
};

/* policy_config_default - the defaults documented in struct policy_config. */
void policy_config_default(struct policy_config *c);

/*
 * policy_config_check - 0 if @c is usable: 0 < fg_limit <= bg_limit <= 1,
 * 0 <= pressure_band < fg_limit, page_size a power of two, max_step >=
 * page_size, stall_window_ns > 0. Otherwise -EINVAL.
 */
int policy_config_check(const struct policy_config *c);

/* policy_init - a state with no history. */
void policy_init(struct policy_state *s);

/*
 * policy_decide - one decision for @in, updating @s. HOLD when the driver is
 * not ready, there are no guest stats yet, the input is inconsistent (U > R,
 * B > R, target > R) or @c fails policy_config_check. The controller
 * requests out->target whenever it differs from in->balloon_target, and on
 * SUSPEND saves and exits. out->reason names the rule and its numbers.
 */
void policy_decide(const struct policy_config *c, struct policy_state *s,
		   const struct policy_input *in, struct policy_decision *out);

/* policy_action_name - "hold", "inflate", "deflate", "suspend" ("?" otherwise). */
const char *policy_action_name(enum policy_action a);

#endif
