/*
 * libFuzzer: the balloon policy on arbitrary inputs. Guest stats and the
 * balloon's actual size come from the guest, so policy_decide must stay
 * sane on any numbers: a run of decisions over one state, each checked
 * against the invariants the controller relies on (actions match the
 * target's direction, targets page aligned, inflation never past the guest
 * pressure bound, rule deflation never below the host's floor, no suspend
 * in foreground, a terminated reason).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "balloon/policy.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MIB (1ULL << 20)

struct reader {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct reader *r, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		v = v << 8 | (r->n ? *r->p : 0);
		if (r->n) {
			r->p++;
			r->n--;
		}
	}
	return v;
}

/* Mostly plausible sizes (MiB granularity, up to 64 GiB), sometimes raw 64-bit. */
static uint64_t size_of(struct reader *r)
{
	uint64_t sel = take(r, 1);

	if (sel < 16)
		return take(r, 8);
	return (take(r, 2) & 0xffff) * MIB + (sel & 1 ? take(r, 2) * 4096 : 0);
}

static void check(const struct policy_config *c, const struct policy_input *in,
		  const struct policy_decision *d)
{
	uint64_t cur = in->balloon_target & ~(c->page_size - 1), B = in->balloon_actual;

	MUST(memchr(d->reason, 0, sizeof(d->reason)) && d->reason[0]);
	MUST((unsigned)d->action <= POLICY_SUSPEND);
	MUST(d->target % c->page_size == 0);
	MUST(!(d->action == POLICY_SUSPEND && in->foreground));
	switch (d->action) {
	case POLICY_SUSPEND:
		MUST(d->target == cur);
		break;
	case POLICY_HOLD: /* unchanged, or a pending inflation stopped short */
		MUST(d->target == cur || (d->target < cur && d->target >= B));
		break;
	case POLICY_INFLATE:
		MUST(d->target > B && d->target != cur && d->target <= in->guest_ram);
		MUST(in->guest_stats_valid && in->driver_ok);
		/* four steps at once at CRITICAL host pressure, else one */
		MUST(d->target - B <= c->max_step ||
		     (in->pressure == POLICY_PRESSURE_CRITICAL && (d->target - B) / 4 <= c->max_step));
		if (c->count_cache && d->target < in->guest_ram)
			MUST((double)in->guest_used / (double)(in->guest_ram - d->target) <=
			     c->bg_limit + 1e-9);
		break;
	case POLICY_DEFLATE: {
		/* Deflation costs host free memory: the host keeps its floor. */
		uint64_t cost = B - d->target, base;
		MUST(d->target < B && d->target != cur && in->guest_stats_valid && in->driver_ok);
		MUST(cost <= c->max_step);
		if (in->foreground)
			base = in->perceptible_threshold;
		else
			base = in->cached_threshold > in->zone_low_sum ? in->cached_threshold
								       : in->zone_low_sum;
		if (base < UINT64_MAX / 4 && in->host_free < UINT64_MAX / 4)
			MUST(in->host_free + c->page_size >= base + c->margin + cost);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reader r = { data, size };
	struct policy_config c;
	struct policy_state s;
	struct policy_input in;
	struct policy_decision d;
	uint64_t now = take(&r, 4) * 1000000ULL;
	unsigned flags = (unsigned)take(&r, 1);

	policy_config_default(&c);
	c.count_cache = flags & 1;
	if (flags & 2)
		c.max_step = 1024 * MIB;
	policy_init(&s);
	memset(&in, 0, sizeof(in));
	in.guest_ram = size_of(&r);
	in.perceptible_threshold = size_of(&r);
	in.cached_threshold = size_of(&r);
	in.zone_low_sum = size_of(&r);
	in.balloon_max = flags & 4 ? size_of(&r) : 0;
	for (unsigned step = 0; step < 32 && r.n; step++) {
		unsigned f = (unsigned)take(&r, 1);
		now += take(&r, 2) * 10000000ULL; /* up to ~655 s per step */
		in.now_ns = now;
		in.foreground = f & 1;
		in.driver_ok = !(f & 2);
		in.guest_stats_valid = !(f & 4);
		in.pressure = (enum policy_pressure)((f >> 3) & 3);
		in.host_free = size_of(&r);
		in.guest_used = f & 32 ? size_of(&r) : in.guest_used;
		in.guest_available = f & 64 ? size_of(&r) : in.guest_available;
		in.balloon_actual = f & 128 ? size_of(&r) : in.balloon_actual;
		policy_decide(&c, &s, &in, &d);
		check(&c, &in, &d);
		/* The controller applies the target; the balloon moves part way. */
		in.balloon_target = d.target;
		if (d.action != POLICY_HOLD && d.action != POLICY_SUSPEND)
			in.balloon_actual = in.balloon_actual / 2 + d.target / 2;
	}
	return 0;
}
