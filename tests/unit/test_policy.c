/*
 * The balloon policy: one table row per rule (config tweak, input, previous
 * state, expected action, target range, reason substring), then a small
 * simulation of a host that allocates and a guest that drops its cache as
 * the balloon grows, checking convergence without oscillation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balloon/policy.h"
#include "harness.h"

#define MIB (1ULL << 20)
#define S 1000000000ULL
#define NOW (1000 * S)
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A 1 GiB guest, perceptible 108 MiB, cached 216 MiB (zone low 0 unless set). */
#define HOST                                                                                     \
	.now_ns = NOW, .guest_ram = 1024 * MIB, .perceptible_threshold = 108 * MIB,              \
	.cached_threshold = 216 * MIB
#define BASE HOST, .guest_stats_valid = true, .driver_ok = true

#define FG(...) { BASE, .foreground = true, __VA_ARGS__ }
#define BG(...) { BASE, .foreground = false, __VA_ARGS__ }

struct row {
	const char *name;
	void (*tweak)(struct policy_config *c);
	struct policy_input in;
	struct policy_state prev;
	enum policy_action action;
	uint64_t lo, hi;     /* target range, bytes */
	const char *reason;  /* substring */
	bool (*after)(const struct policy_state *s); /* extra state check */
};

static void big_step(struct policy_config *c)
{
	c->max_step = 256 * MIB;
}

static void huge_margin(struct policy_config *c)
{
	c->margin = 1000 * MIB;
}

static void bad_config(struct policy_config *c)
{
	c->fg_limit = 0;
}

static void zone_heavy(struct policy_config *c)
{
	c->margin = 32 * MIB;
	c->max_step = 1024 * MIB;
}

static bool stalled_backoff(const struct policy_state *s)
{
	return s->stalls == 1 && s->backoff_until_ns == NOW + 30 * S &&
	       s->stall_cap == 300 * MIB - 128 * MIB && s->stall_cap_until_ns == NOW + 120 * S &&
	       !s->tracking;
}

static bool window_restarted(const struct policy_state *s)
{
	return s->tracking && s->track_ns == NOW && s->track_actual == 200 * MIB && !s->stalls;
}

static bool still_tracking(const struct policy_state *s)
{
	return s->tracking && s->track_ns == NOW - 2 * S && s->track_actual == 100 * MIB;
}

static bool recorded_inflate(const struct policy_state *s)
{
	return s->have_change && s->last_change_ns == NOW && s->last_dir == 1 &&
	       s->last_dir_ns == NOW && !s->last_foreground;
}

static bool recorded_fg_inflate(const struct policy_state *s)
{
	return s->have_change && s->last_change_ns == NOW && s->last_dir == 1 && s->last_foreground;
}

static void available(struct policy_config *c)
{
	c->count_cache = false;
}

/* Previous states. */
#define RECENT_INFLATE(ago, fg)                                                                 \
	{ .have_change = true, .last_change_ns = NOW - (ago), .last_dir = 1,                     \
	  .last_dir_ns = NOW - (ago), .last_foreground = (fg) }
#define RECENT_DEFLATE(ago, fg)                                                                 \
	{ .have_change = true, .last_change_ns = NOW - (ago), .last_dir = -1,                    \
	  .last_dir_ns = NOW - (ago), .last_foreground = (fg) }
#define TRACKING(ago, from) { .tracking = true, .track_ns = NOW - (ago), .track_actual = (from) }

static const struct row rows[] = {
	/* ---- readiness ---- */
	{ "driver not ready", NULL, { HOST, .guest_stats_valid = true, .host_free = 10 * MIB }, {},
	  POLICY_HOLD, 0, 0, "driver not ready", NULL },
	{ "no stats", NULL, { HOST, .driver_ok = true, .host_free = 10 * MIB }, {},
	  POLICY_HOLD, 0, 0, "no guest stats yet", NULL },
	{ "used > ram", NULL, BG(.guest_used = 2048 * MIB, .host_free = 10 * MIB), {},
	  POLICY_HOLD, 0, 0, "inconsistent guest stats", NULL },
	{ "balloon > ram", NULL, BG(.balloon_actual = 2048 * MIB, .balloon_target = 2048 * MIB), {},
	  POLICY_HOLD, 2048 * MIB, 2048 * MIB, "inconsistent input", NULL },
	{ "invalid config", bad_config, BG(.host_free = 10 * MIB), {}, POLICY_HOLD, 0, 0,
	  "invalid policy configuration", NULL },

	/* ---- foreground ---- */
	{ "fg deflate", NULL,
	  FG(.guest_used = 650 * MIB, .balloon_actual = 200 * MIB, .balloon_target = 200 * MIB,
	     .host_free = 2000 * MIB), {},
	  POLICY_DEFLATE, 121 * MIB, 122 * MIB,
	  "foreground: guest pressure 0.79 > 0.75; deflate 79 MiB to 0.72", NULL },
	{ "fg deflate step limit", NULL,
	  FG(.guest_used = 700 * MIB, .balloon_actual = 200 * MIB, .balloon_target = 200 * MIB,
	     .host_free = 2000 * MIB), {},
	  POLICY_DEFLATE, 72 * MIB, 72 * MIB, "deflate 128 MiB to 0.74 (step limit)", NULL },
	{ "fg deflate limited by perceptible", NULL,
	  FG(.guest_used = 650 * MIB, .balloon_actual = 200 * MIB, .balloon_target = 200 * MIB,
	     .host_free = 200 * MIB), {},
	  POLICY_DEFLATE, 172 * MIB, 172 * MIB,
	  "deflate 28 MiB to 0.76 (host free limit: perceptible + margin)", NULL },
	{ "fg deflate blocked by perceptible", NULL,
	  FG(.guest_used = 650 * MIB, .balloon_actual = 200 * MIB, .balloon_target = 200 * MIB,
	     .host_free = 150 * MIB), {},
	  POLICY_HOLD, 200 * MIB, 200 * MIB,
	  "but host free 150 MiB <= perceptible 108 + margin 64 MiB", NULL },
	{ "fg pressure, balloon empty", NULL,
	  FG(.guest_used = 900 * MIB, .host_free = 2000 * MIB), {},
	  POLICY_HOLD, 0, 0, "balloon already empty", NULL },
	{ "fg inflate, host below perceptible", NULL,
	  FG(.guest_used = 300 * MIB, .host_free = 80 * MIB), {},
	  POLICY_INFLATE, 92 * MIB, 92 * MIB,
	  "foreground: host free 80 MiB < perceptible 108 MiB; inflate 92 MiB (guest "
	  "pressure would be 0.32 <= 0.95)", recorded_fg_inflate },
	{ "fg inflate capped by bg_limit", NULL,
	  FG(.guest_used = 900 * MIB, .host_free = 80 * MIB), {},
	  POLICY_INFLATE, 76 * MIB, 77 * MIB, "(limit: guest pressure bound)", NULL },
	{ "fg inflate at bg_limit", NULL,
	  FG(.guest_used = 980 * MIB, .host_free = 80 * MIB), {},
	  POLICY_HOLD, 0, 0, "but balloon at its limit 0 MiB (guest pressure bound)", NULL },
	{ "fg within band", NULL,
	  FG(.guest_used = 634 * MIB, .balloon_actual = 200 * MIB, .balloon_target = 200 * MIB,
	     .host_free = 2000 * MIB), {},
	  POLICY_HOLD, 200 * MIB, 200 * MIB,
	  "foreground: guest pressure 0.77 <= 0.75 + 0.03", NULL },
	{ "fg between perceptible and margin", NULL,
	  FG(.guest_used = 300 * MIB, .host_free = 150 * MIB), {},
	  POLICY_HOLD, 0, 0, "host free 150 MiB >= perceptible 108 MiB", NULL },

	/* ---- background ---- */
	{ "bg inflate", big_step, BG(.guest_used = 400 * MIB, .host_free = 120 * MIB), {},
	  POLICY_INFLATE, 160 * MIB, 160 * MIB,
	  "background: host free 120 MiB < need 280 MiB (cached 216 + margin 64); "
	  "inflate 160 MiB (guest pressure would be 0.46 <= 0.95)",
	  recorded_inflate },
	{ "bg inflate step limit", NULL, BG(.guest_used = 400 * MIB, .host_free = 120 * MIB), {},
	  POLICY_INFLATE, 128 * MIB, 128 * MIB, "inflate 128 MiB (step limit)", NULL },
	{ "bg inflate, zone low dominates", zone_heavy,
	  BG(.guest_used = 100 * MIB, .host_free = 120 * MIB, .zone_low_sum = 400 * MIB), {},
	  POLICY_INFLATE, 312 * MIB, 312 * MIB, "need 432 MiB (zone low 400 + margin 32)", NULL },
	{ "bg inflate capped by bg_limit", NULL,
	  BG(.guest_used = 800 * MIB, .balloon_actual = 100 * MIB, .balloon_target = 100 * MIB,
	     .host_free = 120 * MIB), {},
	  POLICY_INFLATE, 181 * MIB, 182 * MIB, "(limit: guest pressure bound)", NULL },
	{ "bg inflate capped by balloon_max", big_step,
	  BG(.guest_used = 100 * MIB, .host_free = 120 * MIB, .balloon_max = 100 * MIB), {},
	  POLICY_INFLATE, 100 * MIB, 100 * MIB, "inflate 100 MiB (limit: balloon max)", NULL },
	{ "bg at balloon_max", NULL,
	  BG(.guest_used = 10 * MIB, .balloon_actual = 960 * MIB, .balloon_target = 960 * MIB,
	     .host_free = 120 * MIB), {},
	  POLICY_HOLD, 960 * MIB, 960 * MIB,
	  "but balloon at its limit 960 MiB (balloon max)", NULL },
	{ "bg deflate, guest over bg_limit", NULL,
	  BG(.guest_used = 720 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 300 * MIB,
	     .host_free = 1000 * MIB), {},
	  POLICY_DEFLATE, 241 * MIB, 242 * MIB,
	  "background: guest pressure 0.99 > 0.95; deflate 59 MiB to 0.92", NULL },
	{ "bg deflate limited by need", NULL,
	  BG(.guest_used = 720 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 300 * MIB,
	     .host_free = 300 * MIB), {},
	  POLICY_DEFLATE, 280 * MIB, 280 * MIB, "deflate 20 MiB", NULL },
	{ "bg deflate blocked by need", NULL,
	  BG(.guest_used = 720 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 300 * MIB,
	     .host_free = 250 * MIB), {},
	  POLICY_HOLD, 300 * MIB, 300 * MIB, "but host free 250 MiB <= need 280 MiB", NULL },
	{ "bg host free within band", NULL, BG(.guest_used = 400 * MIB, .host_free = 270 * MIB), {},
	  POLICY_HOLD, 0, 0, "host free 270 MiB within 16 MiB of need 280 MiB", NULL },
	{ "bg guest pressure within band", NULL,
	  BG(.guest_used = 700 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 300 * MIB,
	     .host_free = 1000 * MIB), {},
	  POLICY_HOLD, 300 * MIB, 300 * MIB, "guest pressure 0.97 <= 0.95", NULL },
	{ "bg pending target unchanged", NULL,
	  BG(.guest_used = 400 * MIB, .host_free = 120 * MIB, .balloon_target = 128 * MIB), {},
	  POLICY_HOLD, 128 * MIB, 128 * MIB, "unchanged: background: host free 120 MiB", NULL },
	{ "bg pending target over the limit", NULL,
	  BG(.guest_used = 500 * MIB, .balloon_actual = 500 * MIB, .balloon_target = 700 * MIB,
	     .host_free = 120 * MIB), RECENT_INFLATE(1 * S, false),
	  POLICY_HOLD, 500 * MIB, 500 * MIB,
	  "limit: pending target 700 MiB above the limit 498 MiB", NULL },
	{ "pending target lowered to the limit", NULL,
	  BG(.guest_used = 500 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 700 * MIB,
	     .host_free = 120 * MIB), RECENT_INFLATE(1 * S, false),
	  POLICY_HOLD, 497 * MIB, 498 * MIB, "lowered to 498 MiB", NULL },
	{ "shallower deflation is not a reversal", NULL,
	  BG(.guest_used = 720 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 100 * MIB,
	     .host_free = 300 * MIB), RECENT_DEFLATE(2 * S, false),
	  POLICY_DEFLATE, 280 * MIB, 280 * MIB, "deflate 20 MiB", NULL },

	{ "cache counts as used (default)", NULL,
	  BG(.guest_used = 900 * MIB, .guest_available = 700 * MIB, .balloon_actual = 80 * MIB,
	     .balloon_target = 80 * MIB, .host_free = 120 * MIB), {},
	  POLICY_HOLD, 80 * MIB, 80 * MIB,
	  "but balloon at its limit 77 MiB (guest pressure bound)", NULL },
	{ "cache is room when !count_cache", available,
	  BG(.guest_used = 900 * MIB, .guest_available = 700 * MIB, .balloon_actual = 80 * MIB,
	     .balloon_target = 80 * MIB, .host_free = 120 * MIB), {},
	  POLICY_INFLATE, 208 * MIB, 208 * MIB,
	  "inflate 128 MiB (step limit) (guest pressure would be 0.30", NULL },

	/* ---- rate limits ---- */
	{ "rate limit", NULL, BG(.guest_used = 400 * MIB, .host_free = 120 * MIB),
	  RECENT_INFLATE(S / 2, false), POLICY_HOLD, 0, 0,
	  "rate limit: 0.50 s since the last change (< 1.00 s); "
	  "wanted (background) inflate to 128 MiB", NULL },
	{ "rate limit lifted at critical", NULL,
	  BG(.guest_used = 400 * MIB, .host_free = 120 * MIB, .pressure = POLICY_PRESSURE_CRITICAL),
	  RECENT_INFLATE(S / 2, false), POLICY_INFLATE, 160 * MIB, 160 * MIB, "inflate 160 MiB", NULL },
	{ "a further inflate at medium pressure is not rate-limited", NULL,
	  BG(.guest_used = 400 * MIB, .host_free = 120 * MIB, .pressure = POLICY_PRESSURE_MEDIUM),
	  RECENT_INFLATE(S / 2, false), POLICY_INFLATE, 128 * MIB, 128 * MIB, "inflate 128 MiB", NULL },
	{ "a first inflate after a deflate is rate-limited at medium", NULL,
	  BG(.guest_used = 400 * MIB, .host_free = 120 * MIB, .pressure = POLICY_PRESSURE_MEDIUM),
	  RECENT_DEFLATE(S / 2, true), POLICY_HOLD, 0, 0, "rate limit", NULL },
	{ "critical: four steps at once", huge_margin,
	  BG(.guest_used = 100 * MIB, .host_free = 20 * MIB, .pressure = POLICY_PRESSURE_CRITICAL), {},
	  POLICY_INFLATE, 512 * MIB, 512 * MIB, "inflate 512 MiB (step limit)", NULL },
	{ "rate limit over", NULL, BG(.guest_used = 400 * MIB, .host_free = 120 * MIB),
	  RECENT_INFLATE(S, false), POLICY_INFLATE, 128 * MIB, 128 * MIB, "inflate 128 MiB", NULL },
	{ "reversal hold", NULL,
	  BG(.guest_used = 720 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 300 * MIB,
	     .host_free = 1000 * MIB), RECENT_INFLATE(5 * S, false),
	  POLICY_HOLD, 300 * MIB, 300 * MIB,
	  "reversal hold: deflate 5.0 s after inflate (< 10 s); wanted (background) "
	  "deflate to 241 MiB", NULL },
	{ "reversal hold over", NULL,
	  BG(.guest_used = 720 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 300 * MIB,
	     .host_free = 1000 * MIB), RECENT_INFLATE(11 * S, false),
	  POLICY_DEFLATE, 241 * MIB, 242 * MIB, "deflate 59 MiB", NULL },
	{ "reversal hold, medium pressure", NULL,
	  BG(.guest_used = 400 * MIB, .host_free = 120 * MIB, .pressure = POLICY_PRESSURE_MEDIUM),
	  RECENT_DEFLATE(5 * S, false), POLICY_HOLD, 0, 0,
	  "reversal hold: inflate 5.0 s after deflate", NULL },
	{ "reversal override at critical", NULL,
	  BG(.guest_used = 400 * MIB, .host_free = 120 * MIB, .pressure = POLICY_PRESSURE_CRITICAL),
	  RECENT_DEFLATE(5 * S, false), POLICY_INFLATE, 160 * MIB, 160 * MIB,
	  "background: host free 120 MiB < need", NULL },
	{ "critical does not force a deflate", NULL,
	  FG(.guest_used = 650 * MIB, .balloon_actual = 200 * MIB, .balloon_target = 200 * MIB,
	     .host_free = 2000 * MIB, .pressure = POLICY_PRESSURE_CRITICAL),
	  RECENT_INFLATE(5 * S, true), POLICY_HOLD, 200 * MIB, 200 * MIB, "reversal hold: deflate", NULL },
	{ "app switch lifts the reversal hold", NULL,
	  FG(.guest_used = 650 * MIB, .balloon_actual = 200 * MIB, .balloon_target = 200 * MIB,
	     .host_free = 2000 * MIB), RECENT_INFLATE(5 * S, false),
	  POLICY_DEFLATE, 121 * MIB, 122 * MIB, "foreground: guest pressure 0.79", NULL },

	/* ---- stalls ---- */
	{ "stall", NULL,
	  BG(.guest_used = 300 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 400 * MIB,
	     .host_free = 100 * MIB), TRACKING(3 * S, 290 * MIB),
	  POLICY_HOLD, 300 * MIB, 300 * MIB,
	  "stall: balloon grew 10 MiB in 3.0 s (3.5 MB/s < 15.0 MB/s); "
	  "target back to 300 MiB, no inflate for 30 s, max 172 MiB",
	  stalled_backoff },
	{ "no stall when fast", NULL,
	  BG(.guest_used = 300 * MIB, .balloon_actual = 200 * MIB, .balloon_target = 400 * MIB,
	     .host_free = 1000 * MIB), TRACKING(3 * S, 100 * MIB),
	  POLICY_HOLD, 400 * MIB, 400 * MIB, "background", window_restarted },
	{ "no stall before the window", NULL,
	  BG(.guest_used = 300 * MIB, .balloon_actual = 100 * MIB, .balloon_target = 400 * MIB,
	     .host_free = 1000 * MIB), TRACKING(2 * S, 100 * MIB),
	  POLICY_HOLD, 400 * MIB, 400 * MIB, "background", still_tracking },
	{ "backoff blocks inflation", NULL, BG(.guest_used = 400 * MIB, .host_free = 120 * MIB),
	  { .backoff_until_ns = NOW + 10 * S }, POLICY_HOLD, 0, 0,
	  "backoff: no inflate for 10.0 s more after a stall; "
	  "wanted (background) inflate to 128 MiB", NULL },
	{ "backoff allows deflation", NULL,
	  BG(.guest_used = 720 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 300 * MIB,
	     .host_free = 1000 * MIB), { .backoff_until_ns = NOW + 10 * S },
	  POLICY_DEFLATE, 241 * MIB, 242 * MIB, "deflate 59 MiB", NULL },
	{ "lowered max after a stall", NULL, BG(.guest_used = 400 * MIB, .host_free = 120 * MIB),
	  { .stall_cap = 50 * MIB, .stall_cap_until_ns = NOW + 60 * S }, POLICY_INFLATE, 50 * MIB,
	  50 * MIB, "inflate 50 MiB (limit: lowered after a stall)", NULL },
	{ "lowered max expires", NULL, BG(.guest_used = 400 * MIB, .host_free = 120 * MIB),
	  { .stall_cap = 50 * MIB, .stall_cap_until_ns = NOW }, POLICY_INFLATE, 128 * MIB,
	  128 * MIB, "inflate 128 MiB (step limit)", NULL },

	/* ---- suspend ---- */
	{ "suspend at balloon_max", NULL,
	  BG(.guest_used = 10 * MIB, .balloon_actual = 960 * MIB, .balloon_target = 960 * MIB,
	     .host_free = 20 * MIB, .pressure = POLICY_PRESSURE_CRITICAL), {},
	  POLICY_SUSPEND, 960 * MIB, 960 * MIB,
	  "suspend: background at critical host pressure, "
	  "balloon 960 MiB at its limit 960 MiB (balloon max)", NULL },
	{ "suspend at the guest pressure bound", NULL,
	  BG(.guest_used = 600 * MIB, .balloon_actual = 393 * MIB, .balloon_target = 393 * MIB,
	     .host_free = 20 * MIB, .pressure = POLICY_PRESSURE_CRITICAL), {},
	  POLICY_SUSPEND, 393 * MIB, 393 * MIB, "(guest pressure bound)", NULL },
	{ "suspend when stalled", NULL,
	  BG(.guest_used = 300 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 400 * MIB,
	     .host_free = 20 * MIB, .pressure = POLICY_PRESSURE_CRITICAL), TRACKING(3 * S, 299 * MIB),
	  POLICY_SUSPEND, 400 * MIB, 400 * MIB, "balloon stalled at 300 MiB", NULL },
	{ "suspend in backoff", NULL,
	  BG(.guest_used = 300 * MIB, .balloon_actual = 300 * MIB, .balloon_target = 300 * MIB,
	     .host_free = 20 * MIB, .pressure = POLICY_PRESSURE_CRITICAL),
	  { .backoff_until_ns = NOW + S }, POLICY_SUSPEND, 300 * MIB, 300 * MIB, "stalled", NULL },
	{ "no suspend in foreground", NULL,
	  FG(.guest_used = 10 * MIB, .balloon_actual = 960 * MIB, .balloon_target = 960 * MIB,
	     .host_free = 20 * MIB, .pressure = POLICY_PRESSURE_CRITICAL), {},
	  POLICY_HOLD, 960 * MIB, 960 * MIB,
	  "foreground: host free 20 MiB < perceptible 108 MiB but balloon at its limit", NULL },
	{ "no suspend while the balloon can grow", NULL,
	  BG(.guest_used = 400 * MIB, .host_free = 20 * MIB, .pressure = POLICY_PRESSURE_CRITICAL), {},
	  POLICY_INFLATE, 260 * MIB, 260 * MIB, "inflate 260 MiB", NULL },
	{ "no suspend below critical", NULL,
	  BG(.guest_used = 10 * MIB, .balloon_actual = 960 * MIB, .balloon_target = 960 * MIB,
	     .host_free = 20 * MIB, .pressure = POLICY_PRESSURE_MEDIUM), {},
	  POLICY_HOLD, 960 * MIB, 960 * MIB, "at its limit", NULL },
};

TEST(policy_table)
{
	for (size_t i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		struct policy_config c;
		struct policy_state s = r->prev;
		struct policy_decision d;
		bool ok;

		policy_config_default(&c);
		if (r->tweak)
			r->tweak(&c);
		policy_decide(&c, &s, &r->in, &d);
		ok = d.action == r->action && d.target >= r->lo && d.target <= r->hi &&
		     d.target % 4096 == 0 && strstr(d.reason, r->reason) != NULL &&
		     strlen(d.reason) < sizeof(d.reason) - 1 && (!r->after || r->after(&s));
		if (!ok)
			fprintf(stderr, "  row \"%s\": %s target %llu (%.2f MiB) reason \"%s\"\n",
				r->name, policy_action_name(d.action), (unsigned long long)d.target,
				(double)d.target / MIB, d.reason);
		CHECK(ok);
	}
}

TEST(policy_basics)
{
	struct policy_config c;
	struct policy_state s;

	CHECK(strcmp(policy_action_name(POLICY_HOLD), "hold") == 0);
	CHECK(strcmp(policy_action_name(POLICY_SUSPEND), "suspend") == 0);
	CHECK(strcmp(policy_action_name((enum policy_action)9), "?") == 0);
	policy_config_default(&c);
	CHECK_EQ(policy_config_check(&c), 0);
	c.page_size = 3000;
	CHECK(policy_config_check(&c) < 0);
	policy_config_default(&c);
	c.bg_limit = 0.5;
	CHECK(policy_config_check(&c) < 0);
	policy_config_default(&c);
	c.pressure_band = 0.0 / 0.0;
	CHECK(policy_config_check(&c) < 0);
	policy_config_default(&c);
	c.max_step = 0;
	CHECK(policy_config_check(&c) < 0);
	policy_init(&s);
	CHECK(!s.have_change && !s.tracking && s.last_dir == 0);
}

/* ---- simulation ------------------------------------------------------------ */

struct sim {
	uint64_t host_total, host_other;  /* other apps' memory on the host */
	uint64_t R, anon, cache_want;     /* guest: anonymous memory, the cache it would like */
	uint64_t B, target;               /* balloon actual and requested target */
	bool fg;
};

static uint64_t sim_cache(const struct sim *m)
{
	uint64_t min_free = 20 * MIB, have = m->R - m->B;
	uint64_t room = have > m->anon + min_free ? have - m->anon - min_free : 0;

	return room < m->cache_want ? room : m->cache_want;
}

static uint64_t sim_host_free(const struct sim *m)
{
	uint64_t used = m->host_other + (m->R - m->B); /* the guest touched all its RAM */

	return used < m->host_total ? m->host_total - used : 0;
}

/* One second: the balloon moves up to 200 MiB toward its target if the guest can give. */
static void sim_step(struct sim *m)
{
	uint64_t most = m->R - m->anon - 20 * MIB; /* the guest keeps 20 MiB free */

	if (m->target > m->B) {
		uint64_t to = m->B + 200 * MIB < m->target ? m->B + 200 * MIB : m->target;
		m->B = to < most ? to : (most > m->B ? most : m->B);
	} else if (m->target < m->B) {
		m->B = m->B > m->target + 200 * MIB ? m->B - 200 * MIB : m->target;
	}
}

struct sim_log {
	unsigned changes, reversals, suspends;
	int last_dir;
	uint64_t min_free, last_change_t;
};

static void sim_run(struct sim *m, const struct policy_config *c, struct policy_state *s,
		    unsigned t0, unsigned t1, uint64_t alloc_per_s, uint64_t alloc_until,
		    struct sim_log *log, bool trace)
{
	for (unsigned t = t0; t < t1; t++) {
		struct policy_input in = {
			.now_ns = (uint64_t)t * S,
			.foreground = m->fg,
			.perceptible_threshold = 108 * MIB,
			.cached_threshold = 216 * MIB,
			.zone_low_sum = 20 * MIB,
			.guest_ram = m->R,
			.guest_stats_valid = true,
			.driver_ok = true,
		};
		struct policy_decision d;

		if (m->host_other < alloc_until)
			m->host_other += alloc_per_s;
		in.host_free = sim_host_free(m);
		in.guest_used = m->anon + sim_cache(m);
		in.guest_available = m->R - m->B > m->anon ? m->R - m->B - m->anon : 0; /* free + cache */
		in.balloon_actual = m->B;
		in.balloon_target = m->target;
		in.pressure = in.host_free < 50 * MIB ? POLICY_PRESSURE_CRITICAL
			    : in.host_free < 150 * MIB ? POLICY_PRESSURE_MEDIUM : POLICY_PRESSURE_NONE;
		if (in.host_free < log->min_free)
			log->min_free = in.host_free;
		policy_decide(c, s, &in, &d);
		if (trace)
			printf("  t=%3u free %4llu B %4llu T %4llu U %4llu: %s %llu: %s\n", t,
			       (unsigned long long)(in.host_free / MIB),
			       (unsigned long long)(m->B / MIB), (unsigned long long)(m->target / MIB),
			       (unsigned long long)(in.guest_used / MIB), policy_action_name(d.action),
			       (unsigned long long)(d.target / MIB), d.reason);
		if (d.action == POLICY_SUSPEND)
			log->suspends++;
		if (d.target != m->target) {
			int dir = d.target > m->target ? 1 : -1;
			if (log->last_dir && dir != log->last_dir)
				log->reversals++;
			log->last_dir = dir;
			log->changes++;
			log->last_change_t = t;
			m->target = d.target;
		}
		sim_step(m);
	}
}

TEST(policy_simulation)
{
	struct policy_config c;
	struct policy_state s;
	struct sim m = {
		.host_total = 3072 * MIB, .host_other = 1500 * MIB, .R = 1024 * MIB,
		.anon = 150 * MIB, .cache_want = 550 * MIB, .fg = false,
	};
	struct sim_log log = { .min_free = UINT64_MAX };
	uint64_t need = 216 * MIB + 64 * MIB, free_now;
	bool trace = getenv("POLICY_TRACE") != NULL; /* print every decision */

	policy_config_default(&c);
	c.count_cache = false; /* the guest's cache is what the balloon takes */
	policy_init(&s);
	/* Background: a host app allocates 300 MB, later 800 MB more (10 MiB/s). */
	sim_run(&m, &c, &s, 0, 20, 0, 0, &log, trace);
	CHECK_EQ(log.changes, 0); /* nothing to do while the host is comfortable */
	sim_run(&m, &c, &s, 20, 80, 10 * MIB, 1800 * MIB, &log, trace);
	sim_run(&m, &c, &s, 80, 300, 10 * MIB, 2600 * MIB, &log, trace);
	free_now = sim_host_free(&m);
	printf("  background: balloon %llu MiB, host free %llu MiB (min %llu), %u changes, %u reversals\n",
	       (unsigned long long)(m.B / MIB), (unsigned long long)(free_now / MIB),
	       (unsigned long long)(log.min_free / MIB), log.changes, log.reversals);
	CHECK(free_now + c.host_free_band >= need); /* converged to the need */
	CHECK(log.min_free > 0);                     /* the host never ran out */
	CHECK_EQ(log.reversals, 0);                  /* no oscillation */
	CHECK_EQ(log.suspends, 0);
	CHECK(log.last_change_t < 240);              /* and settled: the last minute holds */
	CHECK(m.B >= 780 * MIB && m.B <= 900 * MIB);
	CHECK((double)m.anon / (double)(m.R - m.B) <= c.bg_limit);

	/* Foreground: the host app exits, the guest's workload grows to 600 MiB. */
	m.fg = true;
	m.host_other = 1500 * MIB;
	m.anon = 600 * MIB;
	memset(&log, 0, sizeof(log));
	log.min_free = UINT64_MAX;
	sim_run(&m, &c, &s, 300, 500, 0, 0, &log, trace);
	{
		double P = (double)m.anon / (double)(m.R - m.B); /* what the policy sees */
		printf("  foreground: balloon %llu MiB, guest pressure %.2f, %u changes, %u reversals\n",
		       (unsigned long long)(m.B / MIB), P, log.changes, log.reversals);
		CHECK(P <= c.fg_limit + c.pressure_band);
	}
	CHECK_EQ(log.reversals, 0);
	CHECK(log.min_free >= 108 * MIB);
	CHECK(log.last_change_t < 440);

	/* Background again, host crunch beyond what the balloon can give: suspend. */
	m.fg = false;
	m.host_other = 2950 * MIB;
	memset(&log, 0, sizeof(log));
	log.min_free = UINT64_MAX;
	sim_run(&m, &c, &s, 500, 600, 0, 0, &log, trace);
	CHECK(log.suspends > 0);
}

int main(void)
{
	RUN(policy_basics);
	RUN(policy_table);
	RUN(policy_simulation);
	TEST_MAIN_END();
}
