/*
 * The balloon controller: the effects around the pure policy. On the main
 * loop it reads the host's memory signals (signals.h), the guest's
 * statistics and the app's foreground/background state, asks the policy
 * (policy.h) for a balloon target, applies it to the virtio-balloon device,
 * writes the metrics stream and, in the background under critical pressure
 * with the balloon at its limit, saves the VM to its --state directory and
 * stops it.
 *
 * Wake-ups: a periodic timer (interval), PSI triggers on
 * /proc/pressure/memory, the memory cgroup's pressure events and the
 * balloon's event fd. A pressure event runs the policy at once.
 */
#ifndef POCKETVM_BALLOON_CONTROLLER_H
#define POCKETVM_BALLOON_CONTROLLER_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balloon/policy.h"
#include "balloon/signals.h"

#define BCTL_MAX_FDS 8 /* timer, balloon event, 2 PSI triggers, 3 cgroup levels */

struct bctl_config {
	bool policy;		    /* run the policy (on by default with --balloon) */
	struct policy_config pol;
	struct oom_class_config oom;
	bool watch_oom_adj;	    /* follow /proc/self/oom_score_adj */
	bool start_background;	    /* until a signal says otherwise */
	uint64_t interval_ns;	    /* 250 ms: how often the signals are read */
	uint64_t stats_interval_ns; /* 1 s: how often the guest is asked for statistics */
	bool have_lmk;		    /* minfree=/adj= given: the table when the kernel has none */
	struct lmk_table lmk;
	char host_root[256];	    /* read proc/ and sys/ below this directory (tests) */
	char metrics_path[512];	    /* --metrics FILE: JSON lines, "" for none */
};

/* bctl_config_default - policy on, the policy's and signals' defaults. */
void bctl_config_default(struct bctl_config *c);

/*
 * bctl_config_parse - apply a --balloon-policy SPEC: "off", "on", or a comma
 * list of key=value (fg-limit=0.75, bg-limit=0.95, margin=64M, step=128M,
 * floor=64M, interval=250ms, stats-interval=1s, hold=10s, stall-rate=15M
 * (bytes per second below which a growing balloon has stalled), fg-adj=200,
 * bg-adj=900, oom-adj=on|off, start=foreground|background,
 * count-cache=on|off, minfree=P:P:..., adj=A:A:..., host-root=DIR). Pure.
 * Returns 0, or -EINVAL with a reason in @err.
 */
int bctl_config_parse(const char *spec, struct bctl_config *c, char *err, size_t errlen);

struct vm;
struct bctl;

/*
 * bctl_create - the controller for @vm's balloon (vm->balloon must exist)
 * with @cfg (copied). Opens the signals it can; a signal that cannot be
 * opened is logged and left out. NULL on allocation failure.
 */
struct bctl *bctl_create(struct vm *vm, const struct bctl_config *cfg);
void bctl_destroy(struct bctl *c);

/* Add the controller's fds to @pfd (room for BCTL_MAX_FDS); returns count. */
int bctl_pollfds(struct bctl *c, struct pollfd *pfd);

/* Handle readiness in @pfd[0..n) (the entries bctl_pollfds added). */
void bctl_handle(struct bctl *c, const struct pollfd *pfd, int n);

/*
 * bctl_set_foreground - the app came to the foreground (@fg) or went to the
 * background, as told by @why ("ctl", "oom_score_adj 900"); runs the policy.
 */
void bctl_set_foreground(struct bctl *c, bool fg, const char *why);

/*
 * bctl_set_manual - a fixed balloon target of @bytes from the control
 * socket: the policy stands aside until bctl_set_auto.
 */
void bctl_set_manual(struct bctl *c, uint64_t bytes);
void bctl_set_auto(struct bctl *c);

/* bctl_json - append the controller's state as ,"policy":{...} to @out. */
void bctl_json(struct bctl *c, char *out, size_t max);

#endif
