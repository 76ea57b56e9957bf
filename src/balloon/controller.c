/*
 * The balloon controller (see controller.h). Parts, in order: configuration
 * parsing (pure), state, signals and the pressure level, the guest's view,
 * one policy step and its effects, the metrics stream, the main-loop
 * interface and the control-socket interface.
 */
#define _GNU_SOURCE
#include "balloon/controller.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/vm.h"
#include "virtio/balloon.h"

#define MIB (1ULL << 20)
#define MS 1000000ULL
#define PAGE 4096ULL
#define EVENT_HOLD_NS (2000 * MS) /* a pressure event counts for this long */

/* ---- configuration (pure) ------------------------------------------------- */

void bctl_config_default(struct bctl_config *c)
{
	memset(c, 0, sizeof(*c));
	c->policy = true;
	policy_config_default(&c->pol);
	/* Pressure as (total - available) / total: a Linux guest's page cache fills
	 * its RAM, and with (total - free) / total it would look full and could
	 * never give the cache back (count-cache=on restores that formula). */
	c->pol.count_cache = false;
	oom_class_config_default(&c->oom);
	c->watch_oom_adj = true;
	c->interval_ns = 250 * MS;
	c->stats_interval_ns = 1000 * MS;
}

static int parse_double(const char *v, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= lo && d <= hi))
		return -EINVAL;
	*out = d;
	return 0;
}

static int parse_int(const char *v, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		return -EINVAL;
	*out = (int)n;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "1") || !strcmp(v, "yes"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "no"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* "250ms", "1s", "10s", "1.5s": nanoseconds, at most an hour. */
static int parse_duration(const char *v, uint64_t *ns)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	double scale = !strcmp(end, "ms") ? 1e6 : !strcmp(end, "s") ? 1e9 : 0;
	if (errno || end == v || !scale || !(d >= 0) || d * scale > 3600e9)
		return -EINVAL;
	*ns = (uint64_t)(d * scale);
	return 0;
}

/* "P:P:P": up to LMK_MAX_LEVELS unsigned numbers. */
static int parse_list(const char *v, long lo, long hi, long *out, unsigned *n)
{
	*n = 0;
	while (*v) {
		char *end;
		errno = 0;
		long x = strtol(v, &end, 10);
		if (errno || end == v || x < lo || x > hi || *n == LMK_MAX_LEVELS ||
		    (*end && *end != ':'))
			return -EINVAL;
		out[(*n)++] = x;
		v = *end ? end + 1 : end;
		if (end[0] == ':' && !end[1])
			return -EINVAL;
	}
	return *n ? 0 : -EINVAL;
}

int bctl_config_parse(const char *spec, struct bctl_config *c, char *err, size_t errlen)
{
	char buf[1024], *save = NULL;
	long pages[LMK_MAX_LEVELS], adj[LMK_MAX_LEVELS];
	unsigned npages = 0, nadj = 0;

	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "--balloon-policy: too long");
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		int r = 0;
		if (!v) {
			if (!strcmp(kv, "on") || !strcmp(kv, "off")) {
				c->policy = kv[1] == 'n';
				continue;
			}
			snprintf(err, errlen, "--balloon-policy: '%s' is not on, off or KEY=VALUE", kv);
			return -EINVAL;
		}
		*v++ = 0;
		if (!strcmp(kv, "fg-limit"))
			r = parse_double(v, 0.05, 1.0, &c->pol.fg_limit);
		else if (!strcmp(kv, "bg-limit"))
			r = parse_double(v, 0.05, 1.0, &c->pol.bg_limit);
		else if (!strcmp(kv, "margin"))
			r = config_parse_size(v, &c->pol.margin);
		else if (!strcmp(kv, "step"))
			r = config_parse_size(v, &c->pol.max_step) ||
			    c->pol.max_step < PAGE ? -EINVAL : 0;
		else if (!strcmp(kv, "floor"))
			r = config_parse_size(v, &c->pol.guest_floor);
		else if (!strcmp(kv, "stall-rate"))
			r = config_parse_size(v, &c->pol.stall_rate) || !c->pol.stall_rate ? -EINVAL : 0;
		else if (!strcmp(kv, "hold"))
			r = parse_duration(v, &c->pol.reversal_hold_ns);
		else if (!strcmp(kv, "interval"))
			r = parse_duration(v, &c->interval_ns) || c->interval_ns < 10 * MS ? -EINVAL : 0;
		else if (!strcmp(kv, "stats-interval"))
			r = parse_duration(v, &c->stats_interval_ns) ||
			    c->stats_interval_ns < 100 * MS ? -EINVAL : 0;
		else if (!strcmp(kv, "fg-adj"))
			r = parse_int(v, -1000, 1000, &c->oom.fg_max);
		else if (!strcmp(kv, "bg-adj"))
			r = parse_int(v, -1000, 1000, &c->oom.bg_min);
		else if (!strcmp(kv, "oom-adj"))
			r = parse_bool(v, &c->watch_oom_adj);
		else if (!strcmp(kv, "count-cache"))
			r = parse_bool(v, &c->pol.count_cache);
		else if (!strcmp(kv, "start"))
			r = !strcmp(v, "background") ? (c->start_background = true, 0)
			    : !strcmp(v, "foreground") ? (c->start_background = false, 0) : -EINVAL;
		else if (!strcmp(kv, "minfree"))
			r = parse_list(v, 1, 1L << 30, pages, &npages);
		else if (!strcmp(kv, "adj"))
			r = parse_list(v, -1000, 1000, adj, &nadj);
		else if (!strcmp(kv, "host-root"))
			r = strlen(v) < sizeof(c->host_root) && v[0] == '/'
				    ? (snprintf(c->host_root, sizeof(c->host_root), "%s", v), 0)
				    : -EINVAL;
		else {
			snprintf(err, errlen, "--balloon-policy: unknown key '%s'", kv);
			return -EINVAL;
		}
		if (r) {
			snprintf(err, errlen, "--balloon-policy: bad value for %s: '%s'", kv, v);
			return -EINVAL;
		}
	}
	if (npages || nadj) {
		if (!npages || npages != nadj) {
			snprintf(err, errlen, "--balloon-policy: minfree= and adj= need the same "
				 "number of levels");
			return -EINVAL;
		}
		struct lmk_table t = { .n = npages, .page_size = PAGE };
		for (unsigned i = 0; i < npages; i++) {
			t.minfree_pages[i] = (uint64_t)pages[i];
			t.score_adj[i] = (int)adj[i];
		}
		c->lmk = t;
		c->have_lmk = true;
	}
	if (policy_config_check(&c->pol) || c->oom.fg_max >= c->oom.bg_min) {
		snprintf(err, errlen, "--balloon-policy: inconsistent limits (need fg-limit <= "
			 "bg-limit and fg-adj < bg-adj)");
		return -EINVAL;
	}
	return 0;
}

/* ---- state ------------------------------------------------------------------ */

enum { CG_LOW, CG_MEDIUM, CG_CRITICAL, CG_LEVELS };

struct bctl {
	struct vm *vm;
	struct balloon *dev;
	struct bctl_config cfg;
	char proc[300], sys[300];

	struct host_reader hr;
	bool hr_ok;
	struct policy_state ps;
	bool foreground, manual;
	int last_adj;
	bool have_adj;

	int timer_fd;
	int psi_fd[2];		/* some (medium), full (critical) */
	int cg_fd[CG_LEVELS];	/* v1 eventfds; v2: memory.events in [CG_CRITICAL] */
	uint64_t event_until[POLICY_PRESSURE_CRITICAL + 1]; /* a level holds until */

	uint64_t t0, last_stats_req, armed_ns;
	FILE *metrics;

	/* The latest step, for `ctl stats` and the metrics stream. */
	struct host_sample host;
	enum policy_pressure level;
	struct policy_decision last;
	char last_logged[sizeof(((struct policy_decision *)0)->reason)];

	/* A pressure episode: from the event to memory back on the host. */
	bool episode;
	uint64_t ep_t0, ep_inflated0, ep_reported0;
	uint64_t returned_ms;	/* the last episode's latency, 0 = none yet */
	uint64_t returned_bytes;
	unsigned suspends;
};

static const char *level_name(enum policy_pressure p)
{
	static const char *const n[] = { "none", "some", "medium", "critical" };
	return (unsigned)p < sizeof(n) / sizeof(n[0]) ? n[p] : "?";
}

/* ---- signals and the pressure level ------------------------------------------------ */

static void bctl_open_signals(struct bctl *c)
{
	struct host_paths hp;

	host_paths_default(&hp);
	if (c->cfg.host_root[0]) {
		snprintf(c->proc, sizeof(c->proc), "%s/proc", c->cfg.host_root);
		snprintf(c->sys, sizeof(c->sys), "%s/sys", c->cfg.host_root);
		hp.proc = c->proc;
		hp.sys = c->sys;
		hp.cgroup_root_override = c->cfg.host_root;
	}
	int r = host_reader_init(&c->hr, &hp, c->cfg.have_lmk ? &c->cfg.lmk : NULL);
	c->hr_ok = r == 0;
	if (r) {
		pr_warn("balloon: host_reader_init: %s; the policy is off", strerror(-r));
		return;
	}
	/* lmkd's levels: 70 ms of partial stall per second is medium pressure,
	 * 700 ms of full stall critical. Averages are the fallback. */
	c->psi_fd[0] = psi_trigger_open(&hp, "some", 70000, 1000000);
	c->psi_fd[1] = psi_trigger_open(&hp, "full", 700000, 1000000);
	/* Kernels that refuse windows under 2 s: the same rates over 2 s. */
	if (c->psi_fd[0] == -EINVAL)
		c->psi_fd[0] = psi_trigger_open(&hp, "some", 140000, 2000000);
	if (c->psi_fd[1] == -EINVAL)
		c->psi_fd[1] = psi_trigger_open(&hp, "full", 1400000, 2000000);
	if (c->psi_fd[0] < 0 || c->psi_fd[1] < 0)
		pr_info("balloon: no PSI triggers (%s); reading PSI averages instead",
			strerror(-(c->psi_fd[0] < 0 ? c->psi_fd[0] : c->psi_fd[1])));
	if (c->hr.have_cg) {
		static const char *const lv[CG_LEVELS] = { "low", "medium", "critical" };
		for (int i = 0; i < CG_LEVELS; i++) {
			if (c->hr.cg.version == CGROUP_V2 && i != CG_CRITICAL)
				continue; /* v2: one fd, memory.events */
			c->cg_fd[i] = cgroup_pressure_fd(&c->hr.cg, lv[i]);
		}
		pr_info("balloon: memory cgroup v%d at %s", (int)c->hr.cg.version, c->hr.cg.dir);
	}
	pr_info("balloon: lmk thresholds: perceptible %llu MiB, cached %llu MiB (%s)",
		(unsigned long long)(c->hr.lmk.perceptible_bytes >> 20),
		(unsigned long long)(c->hr.lmk.cached_bytes >> 20),
		c->hr.lmk.from_kernel ? "lowmemorykiller" : "configured table");
}

static void raise_level(struct bctl *c, enum policy_pressure p, uint64_t now)
{
	if (now + EVENT_HOLD_NS > c->event_until[p])
		c->event_until[p] = now + EVENT_HOLD_NS;
}

/*
 * The host's pressure now: the strongest of the recent events (PSI
 * triggers, cgroup levels), the PSI averages, and host free memory against
 * the low-memory killer's thresholds.
 */
static enum policy_pressure bctl_pressure(struct bctl *c, const struct host_sample *hs,
					  uint64_t now)
{
	enum policy_pressure p = POLICY_PRESSURE_NONE;

	for (int l = POLICY_PRESSURE_CRITICAL; l > POLICY_PRESSURE_NONE; l--)
		if (now < c->event_until[l]) {
			p = (enum policy_pressure)l;
			break;
		}
	if (hs->have_psi) {
		enum policy_pressure a = hs->psi_full_avg10 >= 20.0  ? POLICY_PRESSURE_CRITICAL
					 : hs->psi_some_avg10 >= 10.0 ? POLICY_PRESSURE_MEDIUM
					 : hs->psi_some_avg10 >= 1.0  ? POLICY_PRESSURE_SOME
								      : POLICY_PRESSURE_NONE;
		if (a > p)
			p = a;
	}
	enum policy_pressure f = hs->host_free < hs->perceptible_bytes ? POLICY_PRESSURE_CRITICAL
				 : hs->host_free < hs->cached_bytes     ? POLICY_PRESSURE_MEDIUM
									: POLICY_PRESSURE_NONE;
	return f > p ? f : p;
}

/* ---- the guest's view ---------------------------------------------------------------- */

/*
 * Normalise the guest's statistics for the policy: R the memory it manages
 * (balloon included), U what it uses outside the balloon. With
 * DEFLATE_ON_OOM Linux keeps balloon pages inside MemTotal, counted as
 * used; without it MemTotal excludes them. The balloon is taken as it was
 * when the statistics were written. False without usable statistics.
 */
static bool bctl_guest(const struct balloon_info *bi, uint64_t vm_ram, uint64_t *R, uint64_t *U,
		       uint64_t *avail)
{
	const struct balloon_guest_stats *st = &bi->stats;
	uint32_t need = 1u << BALLOON_S_MEMTOT | 1u << BALLOON_S_MEMFREE;

	if (!st->updated_ns || (st->have & need) != need)
		return false;
	uint64_t B = st->actual_pages * PAGE;
	bool doom = bi->features >> VIRTIO_BALLOON_F_DEFLATE_ON_OOM & 1;
	uint64_t total = st->val[BALLOON_S_MEMTOT], free = st->val[BALLOON_S_MEMFREE];
	if (free > total)
		return false;
	uint64_t r = doom ? total : total + B, u = total - free;
	if (doom)
		u = u > B ? u - B : 0;
	if (r > vm_ram) /* a guest claiming more than it has */
		r = vm_ram;
	*R = r;
	*U = u < r ? u : r;
	*avail = st->have >> BALLOON_S_AVAIL & 1 ? st->val[BALLOON_S_AVAIL] : free;
	return true;
}

/* ---- the metrics stream ---------------------------------------------------------------- */

static void bctl_metrics(struct bctl *c, uint64_t now, const struct balloon_info *bi,
			 uint64_t R, uint64_t U, bool have_guest, const char *event)
{
	if (!c->metrics)
		return;
	const struct host_sample *hs = &c->host;
	const struct balloon_guest_stats *st = &bi->stats;
	FILE *f = c->metrics;

	fprintf(f, "{\"t\":%.3f,\"mono\":%.3f,\"fg\":%s,\"manual\":%s,\"balloon_mib\":%.1f,\"target_mib\":%.1f,"
		"\"inflated_mib\":%.1f,\"reported_mib\":%.1f",
		(double)(now - c->t0) / 1e9, (double)now / 1e9, c->foreground ? "true" : "false",
		c->manual ? "true" : "false", (double)bi->actual_pages / 256.0,
		(double)bi->target_pages / 256.0, (double)bi->inflated_pages / 256.0,
		(double)bi->reported_bytes / (double)MIB);
	if (have_guest)
		fprintf(f, ",\"guest_ram_mib\":%.1f,\"guest_used_mib\":%.1f,\"guest_total_mib\":%.1f,"
			"\"guest_free_mib\":%.1f,\"guest_avail_mib\":%.1f,\"guest_pressure\":%.3f",
			(double)R / MIB, (double)U / MIB,
			(double)st->val[BALLOON_S_MEMTOT] / MIB,
			(double)st->val[BALLOON_S_MEMFREE] / MIB,
			(double)st->val[BALLOON_S_AVAIL] / MIB,
			R > bi->actual_pages * PAGE ? (double)U / (double)(R - bi->actual_pages * PAGE)
						    : 1.0);
	if (c->hr_ok)
		fprintf(f, ",\"host_free_mib\":%.1f,\"mem_available_mib\":%.1f,\"cg_limit_mib\":%.1f,"
			"\"cg_usage_mib\":%.1f,\"psi_some10\":%.2f,\"psi_full10\":%.2f,\"oom_kills\":%llu",
			(double)hs->host_free / MIB, (double)hs->mem_available / MIB,
			hs->cg_limited ? (double)hs->cg_limit / MIB : -1.0,
			hs->have_cg ? (double)hs->cg_usage / MIB : -1.0, hs->psi_some_avg10,
			hs->psi_full_avg10, (unsigned long long)hs->cg_oom_kills);
	fprintf(f, ",\"pressure\":\"%s\",\"action\":\"%s\",\"reason\":\"", level_name(c->level),
		policy_action_name(c->last.action));
	for (const char *p = c->last.reason; *p; p++) /* reasons are plain ASCII */
		fputc(*p == '"' || *p == '\\' ? '\'' : *p, f);
	fputc('"', f);
	if (event)
		fprintf(f, ",\"event\":\"%s\"", event);
	if (event && !strcmp(event, "returned"))
		fprintf(f, ",\"latency_ms\":%llu,\"returned_mib\":%.1f",
			(unsigned long long)c->returned_ms, (double)c->returned_bytes / MIB);
	fputs("}\n", f);
	fflush(f);
}

/* ---- one step --------------------------------------------------------------------- */

/*
 * The tick: the configured interval, five times as often (at least every
 * 20 ms apart) while the host is under pressure or an episode is open, so
 * that the balloon follows a fast allocation.
 */
static void bctl_arm(struct bctl *c)
{
	uint64_t ns = c->cfg.interval_ns;
	if (c->level > POLICY_PRESSURE_NONE || c->episode)
		ns = ns / 5 > 20 * MS ? ns / 5 : (ns < 20 * MS ? ns : 20 * MS);
	if (c->timer_fd < 0 || ns == c->armed_ns)
		return;
	struct itimerspec it = {
		.it_interval = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) },
	};
	it.it_value = it.it_interval;
	if (timerfd_settime(c->timer_fd, 0, &it, NULL) == 0)
		c->armed_ns = ns;
}


/* Save to --state and stop, instead of waiting for the low-memory killer. */
static void bctl_suspend(struct bctl *c, const struct policy_decision *d)
{
	char err[512];

	if (!c->vm->cfg.state_dir) {
		pr_warn_once("balloon: %s; but there is no --state DIR to save to, so the VM "
			     "keeps running", d->reason);
		return;
	}
	pr_warn("balloon: %s: saving to %s and stopping", d->reason, c->vm->cfg.state_dir);
	c->suspends++;
	if (vm_snapshot(c->vm, c->vm->cfg.state_dir, true, err, sizeof(err)))
		pr_err("balloon: suspend: cannot save to %s: %s; the VM keeps running",
		       c->vm->cfg.state_dir, err);
}

/*
 * Track an episode: it starts when the policy inflates and ends the moment
 * the host has the pages back (the balloon's discarded pages reached the
 * target; checked on every balloon event, not only at ticks). Its latency
 * is the figure no published system reports: decision to memory returned
 * (the decision itself comes at most one tick after the pressure, at once
 * on a PSI or cgroup event).
 */
static const char *bctl_episode(struct bctl *c, uint64_t now, const struct balloon_info *bi)
{
	if (!c->episode && c->last.action == POLICY_INFLATE) {
		c->episode = true;
		c->ep_t0 = now;
		c->ep_inflated0 = bi->inflated_pages;
		c->ep_reported0 = bi->reported_bytes;
		return "pressure";
	}
	if (c->episode && bi->inflated_pages >= bi->target_pages) {
		c->episode = false;
		c->returned_ms = (now - c->ep_t0) / MS;
		c->returned_bytes = (bi->inflated_pages > c->ep_inflated0
					     ? (bi->inflated_pages - c->ep_inflated0) * PAGE : 0) +
				    (bi->reported_bytes - c->ep_reported0);
		pr_info("balloon: %.1f MiB returned to the host %llu ms after the pressure event",
			(double)c->returned_bytes / MIB, (unsigned long long)c->returned_ms);
		return "returned";
	}
	return NULL;
}

static void bctl_step(struct bctl *c, const char *event)
{
	uint64_t now = mono_ns();
	struct balloon_info bi;
	uint64_t R = 0, U = 0, avail = 0;

	int hr = c->hr_ok ? host_sample_read(&c->hr, &c->host) : -ENODEV;
	if (hr && c->hr_ok)
		pr_warn_once("balloon: cannot read the host's memory signals: %s; holding",
			     strerror(-hr));
	if (!hr && c->cfg.watch_oom_adj && c->host.have_oom_score_adj &&
	    (!c->have_adj || c->host.oom_score_adj != c->last_adj)) {
		c->have_adj = true;
		c->last_adj = c->host.oom_score_adj;
		bool fg = oom_foreground_update(&c->cfg.oom, c->last_adj, c->foreground);
		if (fg != c->foreground) {
			c->foreground = fg;
			pr_info("balloon: %s (oom_score_adj %d)", fg ? "foreground" : "background",
				c->last_adj);
			event = fg ? "foreground" : "background";
		}
	}
	if (now - c->last_stats_req >= c->cfg.stats_interval_ns &&
	    balloon_request_stats(c->dev) == 0)
		c->last_stats_req = now;
	balloon_get_info(c->dev, &bi);
	bool have_guest = bctl_guest(&bi, c->vm->mem.ram_size, &R, &U, &avail);
	c->level = hr ? POLICY_PRESSURE_NONE : bctl_pressure(c, &c->host, now);

	if (c->cfg.policy && !c->manual && hr) {
		c->last.action = POLICY_HOLD;
		snprintf(c->last.reason, sizeof(c->last.reason), "hold: no host memory signals (%s)",
			 strerror(-hr));
	} else if (c->cfg.policy && !c->manual) {
		struct policy_input in = {
			.now_ns = now,
			.foreground = c->foreground,
			.host_free = c->host.host_free,
			.perceptible_threshold = c->host.perceptible_bytes,
			.cached_threshold = c->host.cached_bytes,
			.zone_low_sum = c->host.zone_low_sum,
			.pressure = c->level,
			.guest_ram = have_guest ? R : c->vm->mem.ram_size,
			.guest_stats_valid = have_guest,
			.guest_used = U,
			.guest_available = avail,
			.balloon_actual = bi.actual_pages * PAGE,
			.balloon_target = bi.target_pages * PAGE,
			.driver_ok = bi.driver_ok,
		};
		enum policy_action prev = c->last.action;
		policy_decide(&c->cfg.pol, &c->ps, &in, &c->last);
		if (c->last.target != in.balloon_target) {
			balloon_set_target(c->dev, c->last.target / PAGE);
			balloon_get_info(c->dev, &bi);
		}
		/* Every change is logged with its reason; a hold only when its rule
		 * changes (the words before the first number). */
		size_t rule = strcspn(c->last.reason, "0123456789");
		if (c->last.action != POLICY_HOLD || strlen(c->last_logged) < rule ||
		    strncmp(c->last.reason, c->last_logged, rule)) {
			const char *an = policy_action_name(c->last.action);
			bool named = !strncmp(c->last.reason, an, strlen(an));
			log_msg(c->last.action == POLICY_HOLD ? 2 : 1, "balloon: %s%s%s",
				named ? "" : an, named ? "" : ": ", c->last.reason);
			memcpy(c->last_logged, c->last.reason, sizeof(c->last_logged));
		}
		if (c->last.action == POLICY_SUSPEND && prev != POLICY_SUSPEND)
			event = "suspend";
	}
	const char *ep = bctl_episode(c, now, &bi);
	bctl_metrics(c, now, &bi, R, U, have_guest, ep ? ep : event);
	bctl_arm(c);
	if (c->last.action == POLICY_SUSPEND && c->cfg.policy && !c->manual)
		bctl_suspend(c, &c->last);
}

/* ---- main loop --------------------------------------------------------------------- */

struct bctl *bctl_create(struct vm *vm, const struct bctl_config *cfg)
{
	struct bctl *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->vm = vm;
	c->dev = vm->balloon;
	c->cfg = *cfg;
	c->foreground = !cfg->start_background;
	c->timer_fd = -1;
	c->psi_fd[0] = c->psi_fd[1] = -1;
	for (int i = 0; i < CG_LEVELS; i++)
		c->cg_fd[i] = -1;
	policy_init(&c->ps);
	snprintf(c->last.reason, sizeof(c->last.reason), "not started");
	c->t0 = mono_ns();
	if (cfg->metrics_path[0]) {
		c->metrics = fopen(cfg->metrics_path, "we");
		if (!c->metrics)
			pr_warn("balloon: cannot write metrics to %s: %s", cfg->metrics_path,
				strerror(errno));
	}
	bctl_open_signals(c);
	c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (c->timer_fd >= 0) {
		bctl_arm(c);
	} else {
		pr_warn("balloon: timerfd_create: %s; the policy only runs on events",
			strerror(errno));
	}
	pr_info("balloon: controller started (%s, policy %s)",
		c->foreground ? "foreground" : "background", cfg->policy ? "on" : "off");
	return c;
}

void bctl_destroy(struct bctl *c)
{
	if (!c)
		return;
	int *fds[] = { &c->timer_fd, &c->psi_fd[0], &c->psi_fd[1], &c->cg_fd[0], &c->cg_fd[1],
		       &c->cg_fd[2] };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	if (c->metrics)
		fclose(c->metrics);
	host_reader_close(&c->hr);
	free(c);
}

int bctl_pollfds(struct bctl *c, struct pollfd *pfd)
{
	int n = 0;

	if (!c)
		return 0;
	if (c->timer_fd >= 0)
		pfd[n++] = (struct pollfd){ .fd = c->timer_fd, .events = POLLIN };
	pfd[n++] = (struct pollfd){ .fd = balloon_event_fd(c->dev), .events = POLLIN };
	for (int i = 0; i < 2; i++)
		if (c->psi_fd[i] >= 0)
			pfd[n++] = (struct pollfd){ .fd = c->psi_fd[i], .events = POLLPRI };
	for (int i = 0; i < CG_LEVELS; i++)
		if (c->cg_fd[i] >= 0)
			pfd[n++] = (struct pollfd){
				.fd = c->cg_fd[i],
				.events = c->hr.cg.version == CGROUP_V2 ? POLLPRI : POLLIN };
	return n;
}

static void drain(int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_debug("balloon: drain fd %d: %s", fd, strerror(errno));
}

void bctl_handle(struct bctl *c, const struct pollfd *pfd, int n)
{
	uint64_t now = mono_ns();
	const char *event = NULL;
	bool step = false;

	if (!c)
		return;
	for (int i = 0; i < n; i++) {
		if (!pfd[i].revents)
			continue;
		int fd = pfd[i].fd;
		if (fd == c->timer_fd) {
			drain(fd);
			step = true;
		} else if (fd == balloon_event_fd(c->dev)) {
			/* Fresh statistics or a new `actual`: the policy sees them at
			 * the next tick; an episode ends the moment the pages are back. */
			drain(fd);
			if (c->episode) {
				struct balloon_info bi;
				balloon_get_info(c->dev, &bi);
				const char *ep = bctl_episode(c, now, &bi);
				if (ep)
					bctl_metrics(c, now, &bi, 0, 0, false, ep);
			}
		} else if (fd == c->psi_fd[0] || fd == c->psi_fd[1]) {
			raise_level(c, fd == c->psi_fd[1] ? POLICY_PRESSURE_CRITICAL
							   : POLICY_PRESSURE_MEDIUM, now);
			event = "psi";
			step = true;
		} else {
			for (int l = 0; l < CG_LEVELS; l++) {
				if (fd != c->cg_fd[l])
					continue;
				if (c->hr.cg.version == CGROUP_V2) {
					char b[512];
					if (pread(fd, b, sizeof(b), 0) < 0)
						pr_debug("balloon: memory.events: %s", strerror(errno));
					raise_level(c, POLICY_PRESSURE_CRITICAL, now);
				} else {
					drain(fd);
					raise_level(c, (enum policy_pressure)(POLICY_PRESSURE_SOME + l), now);
				}
				event = "cgroup";
				step = true;
			}
		}
	}
	if (step)
		bctl_step(c, event);
}

/* ---- control socket ------------------------------------------------------------------ */

void bctl_set_foreground(struct bctl *c, bool fg, const char *why)
{
	if (!c)
		return;
	if (c->foreground != fg)
		pr_info("balloon: %s (%s)", fg ? "foreground" : "background", why);
	c->foreground = fg;
	bctl_step(c, fg ? "foreground" : "background");
}

void bctl_set_manual(struct bctl *c, uint64_t bytes)
{
	if (!c)
		return;
	c->manual = true;
	balloon_set_target(c->dev, bytes / PAGE);
	snprintf(c->last.reason, sizeof(c->last.reason), "manual: target %llu MiB from the "
		 "control socket", (unsigned long long)(bytes >> 20));
	c->last.action = POLICY_HOLD;
	bctl_step(c, "manual");
}

void bctl_set_auto(struct bctl *c)
{
	if (!c)
		return;
	c->manual = false;
	policy_init(&c->ps);
	bctl_step(c, "auto");
}

void bctl_json(struct bctl *c, char *out, size_t max)
{
	size_t n = strlen(out);
	if (!c || n + 1 >= max)
		return;
	const struct host_sample *hs = &c->host;
	int w = snprintf(out + n, max - n,
			 ",\"policy\":{\"enabled\":%s,\"mode\":\"%s\",\"foreground\":%s,"
			 "\"pressure\":\"%s\",\"host_free_mib\":%llu,\"perceptible_mib\":%llu,"
			 "\"cached_mib\":%llu,\"zone_low_mib\":%llu,\"oom_score_adj\":%d,"
			 "\"action\":\"%s\",\"returned_ms\":%llu,\"returned_mib\":%llu,"
			 "\"stalls\":%u,\"suspends\":%u,\"reason\":\"",
			 c->cfg.policy && c->hr_ok ? "true" : "false", c->manual ? "manual" : "auto",
			 c->foreground ? "true" : "false", level_name(c->level),
			 (unsigned long long)(hs->host_free >> 20),
			 (unsigned long long)(hs->perceptible_bytes >> 20),
			 (unsigned long long)(hs->cached_bytes >> 20),
			 (unsigned long long)(hs->zone_low_sum >> 20),
			 hs->have_oom_score_adj ? hs->oom_score_adj : 0,
			 policy_action_name(c->last.action), (unsigned long long)c->returned_ms,
			 (unsigned long long)(c->returned_bytes >> 20), c->ps.stalls, c->suspends);
	if (w < 0 || (size_t)w >= max - n)
		return;
	n += (size_t)w;
	for (const char *p = c->last.reason; *p && n + 3 < max; p++)
		out[n++] = *p == '"' || *p == '\\' ? '\'' : *p;
	if (n + 3 < max) {
		out[n++] = '"';
		out[n++] = '}';
	}
	out[n] = 0;
}
