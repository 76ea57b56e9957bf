/*
 * virtio-balloon (virtio 1.x, 5.5): the traditional memory balloon with the
 * statistics queue and free page reporting.
 *
 * The driver gives 4 KiB frames to the balloon (inflate) and takes them
 * back (deflate); the host releases inflated frames and frames the driver
 * reports free, and brings deflated ones back ahead of use. Chains are
 * parsed by pure functions into page ranges; the memory effects go through
 * struct balloon_mem_ops (guest_mem's gm_discard/gm_populate for a real VM,
 * a recorder in the tests). The host side (target, statistics, counters)
 * is a thread-safe API for the main thread.
 */
#ifndef POCKETVM_VIRTIO_BALLOON_H
#define POCKETVM_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/vm.h"
#include "snapshot/codec.h"
#include "virtio/virtqueue.h"

/* Feature bits (5.5.3) */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0	/* not offered */
#define VIRTIO_BALLOON_F_STATS_VQ 1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3	/* not offered */
#define VIRTIO_BALLOON_F_PAGE_POISON 4		/* not offered */
#define VIRTIO_BALLOON_F_FREE_PAGE_REPORTING 5

#define BALLOON_PFN_SHIFT 12	 /* PFNs name 4 KiB frames whatever the guest's page size */
#define BALLOON_NR_QUEUES 4	 /* inflate, deflate, stats, reporting: the most a driver uses */
#define BALLOON_MAX_PFNS 4096	 /* PFNs taken from one chain; Linux sends at most 256 */
#define BALLOON_MAX_STATS 64	 /* statistics entries taken from one buffer */
#define BALLOON_STAT_BYTES 10	 /* le16 tag, le64 value */

/* Statistics tags (5.5.6.3) */
enum balloon_stat_tag {
	BALLOON_S_SWAP_IN = 0,	/* bytes swapped in */
	BALLOON_S_SWAP_OUT = 1, /* bytes swapped out */
	BALLOON_S_MAJFLT = 2,	/* major page faults */
	BALLOON_S_MINFLT = 3,	/* minor page faults */
	BALLOON_S_MEMFREE = 4,	/* bytes free */
	BALLOON_S_MEMTOT = 5,	/* bytes of RAM the guest manages */
	BALLOON_S_AVAIL = 6,	/* bytes available without swapping (estimate) */
	BALLOON_S_CACHES = 7,	/* bytes of disk caches that can be dropped */
	BALLOON_S_HTLB_PGALLOC = 8,
	BALLOON_S_HTLB_PGFAIL = 9,
	BALLOON_S_NR = 10,
};

struct balloon_guest_stats {
	uint64_t val[BALLOON_S_NR];
	uint32_t have;	     /* bit per tag seen in the last buffer */
	uint64_t updated_ns; /* CLOCK_MONOTONIC when they arrived, 0 = never */
	uint64_t actual_pages; /* the driver's `actual` then: MEMTOT/MEMFREE count
				  the balloon as it was, not as it is now */
	uint64_t seq;	     /* buffers received */
};

/* What a transport queue index carries, from the negotiated features. */
enum balloon_role {
	BALLOON_Q_NONE = 0, /* no queue at this index for these features */
	BALLOON_Q_INFLATE,
	BALLOON_Q_DEFLATE,
	BALLOON_Q_STATS,
	BALLOON_Q_REPORTING,
};

/* A run of guest physical memory, GM_PAGE aligned. */
struct balloon_range {
	uint64_t gpa, len;
};

/* One inflate or deflate chain, parsed. */
struct balloon_pfns {
	struct balloon_range range[BALLOON_MAX_PFNS];
	unsigned nr_ranges;
	unsigned nr_pfns;  /* PFNs inside RAM (in the ranges) */
	unsigned ignored;  /* PFNs outside RAM, skipped */
	bool truncated;	   /* a tail shorter than 4 bytes or past BALLOON_MAX_PFNS was ignored */
};

/* One free page report, parsed. */
struct balloon_report {
	struct balloon_range range[VIRTQ_MAX_CHAIN];
	unsigned nr_ranges;
	uint64_t bytes;	   /* sum of the ranges */
	unsigned ignored;  /* buffers that are not whole pages of RAM, or readable */
};

/* The memory effects: 0 or a negative errno. */
struct balloon_mem_ops {
	int (*discard)(void *ctx, uint64_t gpa, uint64_t len);
	int (*populate)(void *ctx, uint64_t gpa, uint64_t len);
};

/* What the host sees of the balloon (balloon_get_info). */
struct balloon_info {
	bool driver_ok;
	uint64_t features;	 /* negotiated */
	uint64_t target_pages;	 /* num_pages: the host's wish, 4 KiB pages */
	uint64_t actual_pages;	 /* actual: what the driver says it holds */
	uint64_t inflated_pages; /* inflated minus deflated, as the host counted them */
	uint64_t actual_changed_ns;
	uint64_t inflate_ops, deflate_ops; /* chains */
	uint64_t reported_bytes;	   /* discarded through free page reporting */
	uint64_t ignored_pfns;		   /* outside RAM */
	struct balloon_guest_stats stats;
};

/* --- pure parsing (unit-tested and fuzzed) --- */

/*
 * balloon_parse_pfns - turn the readable part of an inflate/deflate chain
 * (le32 PFNs) into page ranges, merging adjacent frames (ascending or
 * descending) into runs. Frames outside @gm are counted in ->ignored; a
 * length that is not a multiple of 4, or more than BALLOON_MAX_PFNS frames,
 * sets ->truncated and the excess is ignored. Never fails.
 */
void balloon_parse_pfns(const struct virtq_chain *c, const struct guest_mem *gm,
			struct balloon_pfns *out);

/*
 * balloon_parse_stats - read 10-byte entries from the readable part of a
 * statistics chain into @st->val/@st->have (both reset first). Unknown tags
 * are ignored, a partial trailing entry and entries past BALLOON_MAX_STATS
 * too; a later entry with the same tag wins. Returns the entries read.
 */
unsigned balloon_parse_stats(const struct virtq_chain *c, struct balloon_guest_stats *st);

/*
 * balloon_parse_report - the device-writable buffers of a free page report
 * as guest ranges (through gm_hva_to_gpa), each shrunk to the whole 4 KiB
 * pages it covers; empty or sub-page buffers and readable ones are counted
 * in ->ignored.
 */
void balloon_parse_report(const struct virtq_chain *c, const struct guest_mem *gm,
			  struct balloon_report *out);

/*
 * balloon_queue_roles - map transport queue indices to roles for the
 * negotiated @features, as Linux numbers them: inflate 0, deflate 1, then
 * stats and reporting consecutively, each only when its feature is on.
 */
void balloon_queue_roles(uint64_t features, enum balloon_role role[BALLOON_NR_QUEUES]);

/* The feature bits a configuration offers (device-specific bits only). */
uint64_t balloon_features(const struct balloon_config *cfg);

/*
 * balloon_config_encode/decode - the configuration as one flags byte, for
 * the snapshot's description of the machine. decode refuses unknown bits
 * (-EINVAL).
 */
void balloon_config_encode(struct enc *e, const struct balloon_config *cfg);
int balloon_config_decode(struct dec *d, struct balloon_config *cfg);

/* --- the device --- */

struct balloon;
struct virtio_dev;

/*
 * balloon_new - the device model without a transport: its state, its
 * virtio_dev (ops, features, queue names) and its event fd. Memory effects
 * go to @ops with @ctx; frames are checked against @gm. virtio_balloon_create
 * builds on it; unit tests and fuzzers drive it directly. NULL on failure.
 */
struct balloon *balloon_new(const struct guest_mem *gm, const struct balloon_config *cfg,
			    const struct balloon_mem_ops *ops, void *ctx);

/* Free a device from balloon_new that was never given to a transport. */
void balloon_free(struct balloon *b);

/* The device's virtio_dev (for the transport, and tests that drive queues). */
struct virtio_dev *balloon_vdev(struct balloon *b);

/*
 * virtio_balloon_create - a balloon on @vm's PCI bus with memory effects on
 * vm->mem; adds itself to vm->vdev and sets vm->balloon. 0 or -errno.
 */
int virtio_balloon_create(struct vm *vm, const struct balloon_config *cfg);

/*
 * The host side. Each call takes the device lock; call from the main
 * thread (or any thread that does not hold it).
 *
 * balloon_set_target - ask the driver to hold @pages 4 KiB pages (clamped
 * to the RAM size): writes num_pages and, when the driver is running,
 * raises a configuration change interrupt.
 */
void balloon_set_target(struct balloon *b, uint64_t pages);

/*
 * balloon_request_stats - give the held statistics buffer back to the
 * driver (used, length 0) so it refills and returns it. 0, or -EAGAIN when
 * no buffer is held (none posted yet, stats not negotiated, or a request
 * is already out).
 */
int balloon_request_stats(struct balloon *b);

/* balloon_get_info - a consistent copy of the host-side view. */
void balloon_get_info(struct balloon *b, struct balloon_info *out);

/*
 * balloon_event_fd - an eventfd (non-blocking) written when statistics
 * arrive or the driver changes `actual`; for a main loop to poll. The
 * reader drains it.
 */
int balloon_event_fd(struct balloon *b);

#endif
