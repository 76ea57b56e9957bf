/*
 * The balloon policy (pure). Rules, limits and stall handling are described
 * in policy.h; this file follows the same order: configuration, helpers,
 * stall tracking, the foreground and background rules, then the limits that
 * may turn a rule's proposal into HOLD.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "balloon/policy.h"

#define MIB (1ULL << 20)
#define NS_PER_S 1000000000ULL

/* ---- configuration ------------------------------------------------------ */

void policy_config_default(struct policy_config *c)
{
	*c = (struct policy_config){
		.fg_limit = 0.75,
		.bg_limit = 0.95,
		.pressure_band = 0.03,
		.margin = 64 * MIB,
		.host_free_band = 16 * MIB,
		.max_step = 128 * MIB,
		.min_interval_ns = NS_PER_S,
		.reversal_hold_ns = 10 * NS_PER_S,
		.stall_window_ns = 3 * NS_PER_S,
		.stall_rate = 15000000,
		.backoff_ns = 30 * NS_PER_S,
		.stall_shrink = 128 * MIB,
		.stall_cap_ns = 120 * NS_PER_S,
		.guest_floor = 64 * MIB,
		.page_size = 4096,
		.count_cache = true,
	};
}

int policy_config_check(const struct policy_config *c)
{
	if (!(c->fg_limit > 0.0) || !(c->fg_limit <= c->bg_limit) || !(c->bg_limit <= 1.0))
		return -EINVAL;
	if (!(c->pressure_band >= 0.0) || !(c->pressure_band < c->fg_limit))
		return -EINVAL;
	if (!c->page_size || (c->page_size & (c->page_size - 1)))
		return -EINVAL;
	if (c->max_step < c->page_size || !c->stall_window_ns)
		return -EINVAL;
	return 0;
}

void policy_init(struct policy_state *s)
{
	memset(s, 0, sizeof(*s));
}

const char *policy_action_name(enum policy_action a)
{
	switch (a) {
	case POLICY_HOLD:
		return "hold";
	case POLICY_INFLATE:
		return "inflate";
	case POLICY_DEFLATE:
		return "deflate";
	case POLICY_SUSPEND:
		return "suspend";
	}
	return "?";
}

/* ---- helpers ------------------------------------------------------------- */

/* What one decision looks at, derived once from the input. */
struct view {
	const struct policy_config *c;
	const struct policy_input *in;
	uint64_t R, U, B, F, ps;
	uint64_t cap;    /* balloon_max, lowered for a while after a stall */
	uint64_t top;    /* largest balloon for inflation: min(cap, bg bound) */
	const char *top_why;
	double P;
};

static unsigned long long mib(uint64_t x)
{
	return (unsigned long long)((x >> 20) + ((x >> 19) & 1));
}

static double secs(uint64_t ns)
{
	return (double)ns / (double)NS_PER_S;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t since(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

static uint64_t align_down(uint64_t x, uint64_t ps)
{
	return x & ~(ps - 1);
}

static uint64_t align_up(uint64_t x, uint64_t ps)
{
	return x > UINT64_MAX - (ps - 1) ? align_down(x, ps) : align_down(x + ps - 1, ps);
}

/* U / (R - B); a guest left with nothing is at a pressure beyond any limit. */
static double pressure_at(uint64_t R, uint64_t U, uint64_t B)
{
	uint64_t have = R > B ? R - B : 0;

	if (!have)
		return U ? 1000.0 : 0.0;
	return (double)U / (double)have;
}

/* The largest balloon keeping U / (R - B) <= @limit. */
static uint64_t bound_at(uint64_t R, uint64_t U, double limit)
{
	double keep = (double)U / limit;
	uint64_t k;

	if (!(keep < (double)R))
		return 0;
	k = (uint64_t)keep;
	if ((double)k < keep)
		k++;
	return k >= R ? 0 : R - k;
}

__attribute__((format(printf, 3, 4))) static void say(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, n, fmt, ap);
	va_end(ap);
}

/* ---- stall tracking ------------------------------------------------------ */

/*
 * Watch a balloon below its target. True when, over at least stall_window,
 * it grew slower than stall_rate; @grown and @elapsed say by how much.
 */
static bool stall_update(const struct policy_config *c, struct policy_state *s,
			 const struct policy_input *in, uint64_t *grown, uint64_t *elapsed)
{
	uint64_t B = in->balloon_actual, el, g;

	if (in->balloon_target <= B) {
		s->tracking = false;
		return false;
	}
	if (!s->tracking || in->now_ns < s->track_ns) {
		s->tracking = true;
		s->track_ns = in->now_ns;
		s->track_actual = B;
		return false;
	}
	el = in->now_ns - s->track_ns;
	if (el < c->stall_window_ns)
		return false;
	g = B > s->track_actual ? B - s->track_actual : 0;
	if ((double)g * (double)NS_PER_S >= (double)c->stall_rate * (double)el) {
		s->track_ns = in->now_ns; /* fast enough: a new window */
		s->track_actual = B;
		return false;
	}
	s->tracking = false;
	*grown = g;
	*elapsed = el;
	return true;
}

/* ---- rules ----------------------------------------------------------------- */

/*
 * The most one inflation may add: max_step, four times that at CRITICAL
 * host pressure, when the low-memory killer is about to act and a slow
 * balloon is worse than an overshoot.
 */
static uint64_t inflate_step(const struct view *v)
{
	uint64_t st = v->c->max_step;

	if (v->in->pressure == POLICY_PRESSURE_CRITICAL)
		st = st > UINT64_MAX / 4 ? UINT64_MAX : st * 4;
	return st;
}

/* Inflate by up to @want within top and the step: the new target, or B. */
static uint64_t grow(const struct view *v, uint64_t want)
{
	uint64_t room = v->top > v->B ? v->top - v->B : 0;
	uint64_t d = min64(min64(want, room), inflate_step(v));

	return align_down(v->B + d, v->ps) > v->B ? align_down(v->B + d, v->ps) : v->B;
}

/* Deflate by up to @want, at most @room and max_step: the new target, or B. */
static uint64_t shrink(const struct view *v, uint64_t want, uint64_t room)
{
	uint64_t d = min64(min64(want, room), min64(v->c->max_step, v->B));
	uint64_t T = align_up(v->B - d, v->ps);

	return T < v->B ? T : v->B; /* B itself may be unaligned: then no move */
}

/*
 * Guest pressure over @limit: deflate toward @limit - band (*@want), while
 * host free stays above @floor (*@room). The new target, or B.
 */
static uint64_t relieve_guest(const struct view *v, double limit, uint64_t floor, uint64_t *want,
			      uint64_t *room)
{
	uint64_t aim = bound_at(v->R, v->U, limit - v->c->pressure_band);

	*want = v->B > aim ? v->B - aim : 0;
	*room = v->F > floor ? v->F - floor : 0;
	return shrink(v, *want, *room);
}

/* Why a move of @d stopped short of @want ("" when it did not). */
static const char *short_note(const struct view *v, uint64_t d, uint64_t want, bool inflating,
			      char *buf, size_t n)
{
	if (d + v->ps > want)
		return "";
	if (d + v->ps > (inflating ? inflate_step(v) : v->c->max_step))
		return " (step limit)";
	if (!inflating)
		return "";
	say(buf, n, " (limit: %s)", v->top_why);
	return buf;
}

/* The proposed target (B: no change proposed), explained in @why. */
static uint64_t rule_foreground(const struct view *v, char *why, size_t n)
{
	const struct policy_config *c = v->c;
	uint64_t perc = v->in->perceptible_threshold;
	uint64_t floor = sat_add(perc, c->margin), T, want, room, d;
	char note[48];

	if (v->F < perc) {
		want = floor - v->F;
		T = grow(v, want);
		d = T - v->B;
		if (!d)
			say(why, n, "foreground: host free %llu MiB < perceptible %llu MiB "
				    "but balloon at its limit %llu MiB (%s)",
			    mib(v->F), mib(perc), mib(v->top), v->top_why);
		else
			say(why, n, "foreground: host free %llu MiB < perceptible %llu MiB; "
				    "inflate %llu MiB%s (guest pressure would be %.2f <= %.2f)",
			    mib(v->F), mib(perc), mib(d),
			    short_note(v, d, want, true, note, sizeof(note)),
			    pressure_at(v->R, v->U, T), c->bg_limit);
		return T;
	}
	if (v->P > c->fg_limit + c->pressure_band) {
		T = relieve_guest(v, c->fg_limit, floor, &want, &room);
		d = v->B - T;
		if (v->B == 0)
			say(why, n, "foreground: guest pressure %.2f > %.2f, balloon already empty",
			    v->P, c->fg_limit);
		else if (!d)
			say(why, n, "foreground: guest pressure %.2f > %.2f but host free %llu MiB "
				    "<= perceptible %llu + margin %llu MiB",
			    v->P, c->fg_limit, mib(v->F), mib(perc), mib(c->margin));
		else
			say(why, n, "foreground: guest pressure %.2f > %.2f; deflate %llu MiB to %.2f%s%s",
			    v->P, c->fg_limit, mib(d), pressure_at(v->R, v->U, T),
			    room < want && d + v->ps > room ? " (host free limit: perceptible + margin)"
							    : "",
			    short_note(v, d, want, false, note, sizeof(note)));
		return T;
	}
	say(why, n, "foreground: guest pressure %.2f <= %.2f + %.2f, "
		    "host free %llu MiB >= perceptible %llu MiB",
	    v->P, c->fg_limit, c->pressure_band, mib(v->F), mib(perc));
	return v->B;
}

static uint64_t rule_background(const struct view *v, char *why, size_t n)
{
	const struct policy_config *c = v->c;
	uint64_t cached = v->in->cached_threshold, zlow = v->in->zone_low_sum;
	uint64_t base = cached >= zlow ? cached : zlow;
	const char *base_name = cached >= zlow ? "cached" : "zone low";
	uint64_t need = sat_add(base, c->margin), T, want, room, d;
	char note[48];

	if (v->P > c->bg_limit + c->pressure_band) {
		T = relieve_guest(v, c->bg_limit, need, &want, &room);
		d = v->B - T;
		if (v->B == 0)
			say(why, n, "background: guest pressure %.2f > %.2f, balloon already empty",
			    v->P, c->bg_limit);
		else if (!d)
			say(why, n, "background: guest pressure %.2f > %.2f "
				    "but host free %llu MiB <= need %llu MiB",
			    v->P, c->bg_limit, mib(v->F), mib(need));
		else
			say(why, n, "background: guest pressure %.2f > %.2f; deflate %llu MiB to %.2f "
				    "(host free %llu MiB, need %llu MiB)%s",
			    v->P, c->bg_limit, mib(d), pressure_at(v->R, v->U, T), mib(v->F),
			    mib(need), short_note(v, d, want, false, note, sizeof(note)));
		return T;
	}
	if (v->F < need && need - v->F > c->host_free_band) {
		want = need - v->F;
		T = grow(v, want);
		d = T - v->B;
		if (!d)
			say(why, n, "background: host free %llu MiB < need %llu MiB "
				    "but balloon at its limit %llu MiB (%s)",
			    mib(v->F), mib(need), mib(v->top), v->top_why);
		else
			say(why, n, "background: host free %llu MiB < need %llu MiB (%s %llu + margin %llu); "
				    "inflate %llu MiB%s (guest pressure would be %.2f <= %.2f)",
			    mib(v->F), mib(need), base_name, mib(base), mib(c->margin), mib(d),
			    short_note(v, d, want, true, note, sizeof(note)),
			    pressure_at(v->R, v->U, T), c->bg_limit);
		return T;
	}
	say(why, n, "background: host free %llu MiB within %llu MiB of need %llu MiB or above, "
		    "guest pressure %.2f <= %.2f",
	    mib(v->F), mib(c->host_free_band), mib(need), v->P, c->bg_limit);
	return v->B;
}

/* ---- the decision ---------------------------------------------------------- */

static void view_init(struct view *v, const struct policy_config *c,
		      const struct policy_state *s, const struct policy_input *in)
{
	uint64_t bg;

	memset(v, 0, sizeof(*v));
	v->c = c;
	v->in = in;
	v->ps = c->page_size;
	v->R = in->guest_ram;
	v->U = in->guest_used;
	if (!c->count_cache && in->guest_available <= v->R) {
		uint64_t have = v->R > in->balloon_actual ? v->R - in->balloon_actual : 0;
		v->U = have > in->guest_available ? have - in->guest_available : 0;
	}
	v->B = in->balloon_actual;
	v->F = in->host_free;
	v->cap = in->balloon_max ? min64(in->balloon_max, v->R)
				 : (v->R > c->guest_floor ? v->R - c->guest_floor : 0);
	v->top_why = "balloon max";
	if (in->now_ns < s->stall_cap_until_ns && s->stall_cap < v->cap) {
		v->cap = s->stall_cap;
		v->top_why = "lowered after a stall";
	}
	v->cap = align_down(v->cap, v->ps);
	v->top = v->cap;
	if (in->guest_stats_valid && v->U <= v->R) {
		bg = bound_at(v->R, v->U, c->bg_limit);
		if (bg < v->top) {
			v->top = bg;
			v->top_why = "guest pressure bound";
		}
	}
	v->P = pressure_at(v->R, v->U, v->B);
}

static void on_stall(const struct policy_config *c, struct policy_state *s,
		     const struct policy_input *in)
{
	uint64_t B = in->balloon_actual;

	s->backoff_until_ns = sat_add(in->now_ns, c->backoff_ns);
	s->stall_cap = B > c->stall_shrink ? B - c->stall_shrink : 0;
	s->stall_cap_until_ns = sat_add(in->now_ns, c->stall_cap_ns);
	s->stalls++;
}

/* Apply backoff, reversal hold and min interval; false if the change is held. */
static bool limits_allow(const struct policy_config *c, const struct policy_state *s,
			 const struct policy_input *in, int dir, uint64_t T, char *why, size_t n)
{
	char wanted[48];
	bool crit_inflate = dir > 0 && in->pressure == POLICY_PRESSURE_CRITICAL;
	/* Inflating again in the same direction is no oscillation: under host
	 * pressure it is not rate-limited. */
	bool pressed_inflate = dir > 0 && s->last_dir > 0 && in->pressure >= POLICY_PRESSURE_MEDIUM;
	uint64_t now = in->now_ns;

	say(wanted, sizeof(wanted), "wanted (%s) %s to %llu MiB",
	    in->foreground ? "foreground" : "background", dir > 0 ? "inflate" : "deflate", mib(T));
	if (dir > 0 && now < s->backoff_until_ns) {
		say(why, n, "backoff: no inflate for %.1f s more after a stall; %s",
		    secs(s->backoff_until_ns - now), wanted);
		return false;
	}
	if (s->last_dir && dir != s->last_dir && !crit_inflate &&
	    in->foreground == s->last_foreground &&
	    since(now, s->last_dir_ns) < c->reversal_hold_ns) {
		say(why, n, "reversal hold: %s %.1f s after %s (< %.0f s); %s",
		    dir > 0 ? "inflate" : "deflate", secs(since(now, s->last_dir_ns)),
		    s->last_dir > 0 ? "inflate" : "deflate", secs(c->reversal_hold_ns), wanted);
		return false;
	}
	if (s->have_change && !crit_inflate && !pressed_inflate &&
	    since(now, s->last_change_ns) < c->min_interval_ns) {
		say(why, n, "rate limit: %.2f s since the last change (< %.2f s); %s",
		    secs(since(now, s->last_change_ns)), secs(c->min_interval_ns), wanted);
		return false;
	}
	return true;
}

void policy_decide(const struct policy_config *c, struct policy_state *s,
		   const struct policy_input *in, struct policy_decision *out)
{
	char why[sizeof(out->reason)];
	uint64_t grown = 0, elapsed = 0, T;
	struct view v;
	bool stalled;
	int dir;

	memset(out, 0, sizeof(*out));
	out->action = POLICY_HOLD;
	out->target = in->balloon_target;
	if (policy_config_check(c)) {
		say(out->reason, sizeof(out->reason), "hold: invalid policy configuration");
		return;
	}
	out->target = align_down(in->balloon_target, c->page_size);
	if (!in->driver_ok) {
		s->tracking = false;
		say(out->reason, sizeof(out->reason), "hold: balloon driver not ready");
		return;
	}
	if (!in->guest_ram || in->balloon_actual > in->guest_ram ||
	    in->balloon_target > in->guest_ram) {
		say(out->reason, sizeof(out->reason),
		    "hold: inconsistent input: balloon %llu MiB, target %llu MiB, guest RAM %llu MiB",
		    mib(in->balloon_actual), mib(in->balloon_target), mib(in->guest_ram));
		return;
	}

	stalled = stall_update(c, s, in, &grown, &elapsed);
	if (stalled)
		on_stall(c, s, in);
	view_init(&v, c, s, in);

	if (!in->foreground && in->pressure == POLICY_PRESSURE_CRITICAL &&
	    (stalled || in->now_ns < s->backoff_until_ns || v.B + v.ps > v.top)) {
		out->action = POLICY_SUSPEND;
		if (stalled || in->now_ns < s->backoff_until_ns)
			say(out->reason, sizeof(out->reason),
			    "suspend: background at critical host pressure, balloon stalled at %llu MiB",
			    mib(v.B));
		else
			say(out->reason, sizeof(out->reason),
			    "suspend: background at critical host pressure, "
			    "balloon %llu MiB at its limit %llu MiB (%s)",
			    mib(v.B), mib(v.top), v.top_why);
		return;
	}
	if (stalled) {
		out->target = align_up(v.B, v.ps); /* HOLD: stop where it is */
		say(out->reason, sizeof(out->reason),
		    "stall: balloon grew %llu MiB in %.1f s (%.1f MB/s < %.1f MB/s); "
		    "target back to %llu MiB, no inflate for %.0f s, max %llu MiB",
		    mib(grown), secs(elapsed), (double)grown / secs(elapsed) / 1e6,
		    (double)c->stall_rate / 1e6, mib(v.B), secs(c->backoff_ns), mib(s->stall_cap));
		return;
	}
	if (!in->guest_stats_valid) {
		say(out->reason, sizeof(out->reason), "hold: no guest stats yet");
		return;
	}
	if (in->guest_used > in->guest_ram) {
		say(out->reason, sizeof(out->reason),
		    "hold: inconsistent guest stats: used %llu MiB > RAM %llu MiB",
		    mib(in->guest_used), mib(in->guest_ram));
		return;
	}

	if (out->target > v.B && out->target > v.top) {
		/* A pending inflation the guest can no longer afford: HOLD, lowered. */
		T = align_down(v.top, v.ps) > v.B ? align_down(v.top, v.ps) : align_up(v.B, v.ps);
		say(out->reason, sizeof(out->reason),
		    "limit: pending target %llu MiB above the limit %llu MiB (%s); lowered to %llu MiB",
		    mib(out->target), mib(v.top), v.top_why, mib(T));
		out->target = T;
		return;
	}

	T = in->foreground ? rule_foreground(&v, why, sizeof(why))
			   : rule_background(&v, why, sizeof(why));
	if (T == v.B || T == out->target) { /* no proposal, or already requested */
		say(out->reason, sizeof(out->reason), "%s%s", T == v.B ? "" : "unchanged: ", why);
		return;
	}
	dir = T > v.B ? 1 : -1; /* the balloon's own direction */
	if (!limits_allow(c, s, in, dir, T, out->reason, sizeof(out->reason)))
		return;
	out->action = dir > 0 ? POLICY_INFLATE : POLICY_DEFLATE;
	out->target = T;
	memcpy(out->reason, why, sizeof(out->reason));
	s->have_change = true;
	s->last_change_ns = in->now_ns;
	s->last_dir = dir;
	s->last_dir_ns = in->now_ns;
	s->last_foreground = in->foreground;
}
