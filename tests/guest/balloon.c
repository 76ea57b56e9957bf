/*
 * A virtio-balloon driver at CPL 3 (polled), with a memory model the host
 * can check: pages from 16 MiB up are FREE, USED (filled with a pattern of
 * their address) or in the BALLOON.
 *
 * cmdline: fill=MiB (default 64) pages filled at start, then "FILLED n";
 * keep=MiB (default 0): that much of what is in use is the guest's own data,
 * never given to the balloon; the rest of it is page cache the guest drops
 * for the balloon (reported as CACHES and inside AVAIL).
 * Loop: every ~1 ms read num_pages and COM1; inflate (highest USED pages
 * first while more than keep are in use, then FREE ones; none left: the
 * balloon stalls short of its target) or deflate (lowest balloon pages
 * first, refilled before use) in
 * chains of up to 256 PFNs, update `actual`, and print "BALLOON n" when the
 * target is reached; refill and repost the statistics buffer whenever the
 * device returns it. Serial commands, one per line:
 *   use N     N more MiB in use: free pages first, then (with
 *             keep=) page cache turned into data; waits for
 *             a deflate when neither is left              -> "USE-OK mib" | "USE-TIMEOUT ..."
 *   ping      a round trip                                 -> "PONG"
 *   free N    stop using N MiB; with free page reporting,
 *             report them in 4 MiB buffers                -> "FREED n reported=0|1"
 *   verify    check every USED page                       -> "VERIFY-OK mib" | "MISMATCH at A"
 *   hostile   inflate/deflate PFNs outside RAM, an empty
 *             and a 6-byte chain                          -> "HOSTILE-DONE"
 *   quit      "TEST-PASS balloon" and a reset
 * Every wait has a TSC deadline.
 */
#include "vdrv.h"

#define N "balloon"
#define BASE (16ULL << 20) /* above the image, below everything the VMM uses */
#define PAGE 4096ULL
#define MAXPAGES ((0xC0000000ULL - BASE) / PAGE)
#define CHAIN_PFNS 256
#define REPORT_CHUNK (4ULL << 20)
#define REPORT_MAX_DESC 32
#define COM1 0x3f8
#define POLL_TICKS 2000000ULL /* ~1 ms at 2 GHz: one LSR read and one config read */

#define F_STATS 1
#define F_DEFLATE_ON_OOM 2
#define F_REPORTING 5

enum { FREE = 0, USED = 1, BALLOON = 2 };

static uint8_t state[MAXPAGES];
static uint64_t npages, memtot, n_used, n_balloon, filled_total, keep_pages;
static uint64_t hint_used_hi, hint_bal_lo, hint_free_lo; /* search bounds */

static struct vdev dev;
static struct vq inflq, deflq, statq, repq;
static bool has_stats, has_reporting, has_doom;
static uint8_t ring_i[16384] __attribute__((aligned(4096)));
static uint8_t ring_d[16384] __attribute__((aligned(4096)));
static uint8_t ring_s[16384] __attribute__((aligned(4096)));
static uint8_t ring_r[16384] __attribute__((aligned(4096)));
static uint32_t pfns[CHAIN_PFNS] __attribute__((aligned(64)));
static struct stat_entry {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed)) stats[8];

static inline uint64_t pat(uint64_t a)
{
	return a * 0x9E3779B97F4A7C15ULL ^ 0x5bd1e995;
}

static inline uint64_t page_addr(uint64_t i)
{
	return BASE + i * PAGE;
}

static void fill_page(uint64_t i)
{
	uint64_t a = page_addr(i);
	for (uint64_t o = 0; o < PAGE; o += 8)
		*(volatile uint64_t *)(a + o) = pat(a + o);
	filled_total++;
}

static void set_state(uint64_t i, uint8_t s)
{
	uint8_t old = state[i];
	n_used -= old == USED;
	n_balloon -= old == BALLOON;
	n_used += s == USED;
	n_balloon += s == BALLOON;
	state[i] = s;
	if (s == USED && i + 1 > hint_used_hi)
		hint_used_hi = i + 1;
	if (s == BALLOON && i < hint_bal_lo)
		hint_bal_lo = i;
	if (s == FREE && i < hint_free_lo)
		hint_free_lo = i;
}

/* Highest USED page, lowest BALLOON page, lowest FREE page; npages if none. */
static uint64_t top_used(void)
{
	while (hint_used_hi > 0 && state[hint_used_hi - 1] != USED)
		hint_used_hi--;
	return hint_used_hi ? hint_used_hi - 1 : npages;
}

static uint64_t low_balloon(void)
{
	while (hint_bal_lo < npages && state[hint_bal_lo] != BALLOON)
		hint_bal_lo++;
	return hint_bal_lo;
}

static uint64_t low_free(void)
{
	while (hint_free_lo < npages && state[hint_free_lo] != FREE)
		hint_free_lo++;
	return hint_free_lo;
}

static uint64_t use_pages(uint64_t k)
{
	uint64_t done = 0;
	for (uint64_t i; done < k && (i = low_free()) < npages; done++) {
		fill_page(i);
		set_state(i, USED);
	}
	return done;
}

/* ---- the device ---- */

static void wait_used_or_fail(struct vq *q, const char *what)
{
	uint32_t id, len;
	if (!vq_wait_used(q, &id, &len))
		test_fail(N, what);
}

static void send_pfns(struct vq *q, const uint32_t *p, uint32_t bytes)
{
	q->desc[0] = (struct vdesc){ (uint64_t)p, bytes, 0, 0 };
	vq_kick(q, 0);
	wait_used_or_fail(q, "the device did not return a PFN chain");
}

static void write_actual(void)
{
	mmio_w32(dev.devcfg + 4, (uint32_t)n_balloon);
}

/* The next page to give the balloon: cache first, then free memory. */
static uint64_t next_for_balloon(void)
{
	if (n_used > keep_pages && top_used() < npages)
		return top_used();
	return low_free();
}

static void inflate(uint64_t want)
{
	uint32_t n = 0;
	for (uint64_t i; n < want && n < CHAIN_PFNS && (i = next_for_balloon()) < npages; n++) {
		set_state(i, BALLOON); /* no longer ours from here on */
		pfns[n] = (uint32_t)(page_addr(i) / PAGE);
	}
	if (!n)
		return;
	send_pfns(&inflq, pfns, 4 * n);
	write_actual();
}

static void deflate(uint64_t want)
{
	uint32_t n = 0;
	uint64_t idx[CHAIN_PFNS];
	for (uint64_t i; n < want && n < CHAIN_PFNS && (i = low_balloon()) < npages; n++) {
		set_state(i, FREE); /* in transit: neither ours nor the balloon's */
		idx[n] = i;
		pfns[n] = (uint32_t)(page_addr(i) / PAGE);
	}
	if (!n)
		return;
	send_pfns(&deflq, pfns, 4 * n);
	for (uint32_t k = 0; k < n; k++) { /* tell first, then reuse: refill */
		fill_page(idx[k]);
		set_state(idx[k], USED);
	}
	write_actual();
}

static void post_stats(void)
{
	uint64_t used = n_used * PAGE, bal = n_balloon * PAGE;
	uint64_t cache = n_used > keep_pages ? (n_used - keep_pages) * PAGE : 0;
	uint64_t free = memtot > used + bal ? memtot - used - bal : 0;
	/* As Linux counts: with DEFLATE_ON_OOM the balloon stays inside MemTotal
	 * (as used memory), without it MemTotal shrinks by the balloon. */
	uint64_t total = has_doom ? memtot : memtot - bal;
	static const uint16_t tags[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	uint64_t vals[8] = { 0, 0, 0, filled_total, free, total, free + cache, cache };
	for (int i = 0; i < 8; i++) {
		stats[i].tag = tags[i];
		stats[i].val = vals[i];
	}
	statq.desc[0] = (struct vdesc){ (uint64_t)stats, sizeof(stats), 0, 0 };
	vq_kick(&statq, 0);
}

/* The device gave the statistics buffer back: refill and repost it. */
static void poll_stats(void)
{
	if (!has_stats)
		return;
	uint16_t idx = *(volatile uint16_t *)(statq.used + 2);
	if (idx == statq.last_used)
		return;
	statq.last_used = idx;
	post_stats();
}

/* ---- commands ---- */

/*
 * `use N` in progress: the guest's own data grows by N MiB, from free pages
 * first, then by dropping page cache (with keep=, cache turns into data in
 * place); with neither left it waits, as an allocating program does, while
 * the loop keeps serving the balloon, until the host deflates it.
 */
static uint64_t pending_use, use_started;

static void serve_use(void)
{
	if (!pending_use)
		return;
	for (int k = 0; k < 256 && pending_use; k++) {
		if (low_free() < npages)
			use_pages(1);
		else if (!(keep_pages && n_used > keep_pages))
			break; /* nothing to take: wait for a deflate */
		if (keep_pages)
			keep_pages++; /* data now, not cache */
		pending_use--;
	}
	if (!pending_use) {
		printf_serial("USE-OK %u\n", (unsigned long)(n_used / 256));
	} else if (rdtsc() - use_started > 6 * TSC_TIMEOUT) {
		printf_serial("USE-TIMEOUT short %u pages\n", (unsigned long)pending_use);
		pending_use = 0;
	}
}


static void cmd_free(uint64_t mib)
{
	uint64_t want = mib * 256, done = 0;
	bool reported = false;
	while (done < want) {
		/* Up to 32 runs of contiguous pages (at most 4 MiB each), from the top. */
		int nd = 0;
		while (nd < REPORT_MAX_DESC && done < want) {
			uint64_t hi = top_used(), lo = hi;
			if (hi >= npages)
				break;
			set_state(hi, FREE);
			done++;
			while (done < want && (hi - lo + 1) * PAGE < REPORT_CHUNK && lo > 0 &&
			       state[lo - 1] == USED) {
				set_state(--lo, FREE);
				done++;
			}
			repq.desc[nd] = (struct vdesc){ page_addr(lo), (uint32_t)((hi - lo + 1) * PAGE),
							2 | 1, (uint16_t)(nd + 1) };
			nd++;
		}
		if (!nd)
			break; /* nothing left in use */
		if (has_reporting) {
			repq.desc[nd - 1].flags = 2; /* device-writable, the last one */
			vq_kick(&repq, 0);
			wait_used_or_fail(&repq, "the device did not return a free page report");
			reported = true;
		}
	}
	printf_serial("FREED %u reported=%u\n", (unsigned long)(done / 256), (unsigned long)reported);
}

static void cmd_verify(void)
{
	for (uint64_t i = 0; i < npages; i++) {
		if (state[i] != USED)
			continue;
		uint64_t a = page_addr(i);
		for (uint64_t o = 0; o < PAGE; o += 8)
			if (*(volatile uint64_t *)(a + o) != pat(a + o)) {
				printf_serial("MISMATCH at %x\n", (unsigned long)(a + o));
				return;
			}
	}
	printf_serial("VERIFY-OK %u\n", (unsigned long)(n_used / 256));
}

static void cmd_hostile(void)
{
	static uint32_t bad[4];
	uint32_t ram_pfns = (uint32_t)(memtot / PAGE);
	bad[0] = ram_pfns + 10;
	bad[1] = 0xfffffff0u;
	bad[2] = 0x7fffffffu;
	send_pfns(&inflq, bad, 12);	/* frames beyond RAM */
	send_pfns(&inflq, bad, 0);	/* an empty chain */
	send_pfns(&inflq, bad, 6);	/* a PFN and a 2-byte tail */
	send_pfns(&deflq, bad + 1, 4); /* deflating what was never there */
	CHECK_OR_FAIL(!(mmio_r8(dev.common + 20) & 0x40), N); /* no NEEDS_RESET */
	printf_serial("HOSTILE-DONE\n");
}

static uint64_t parse_num(const char *s)
{
	uint64_t v = 0;
	while (*s == ' ')
		s++;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (uint64_t)(*s - '0');
	return v;
}

static bool starts(const char *s, const char *w)
{
	while (*w)
		if (*s++ != *w++)
			return false;
	return *s == 0 || *s == ' ';
}

static void command(const char *line)
{
	if (starts(line, "use")) {
		pending_use += parse_num(line + 3) * 256;
		use_started = rdtsc();
	} else if (starts(line, "free")) {
		cmd_free(parse_num(line + 4));
	} else if (starts(line, "verify")) {
		cmd_verify();
	} else if (starts(line, "hostile")) {
		cmd_hostile();
	} else if (starts(line, "ping")) {
		printf_serial("PONG\n");
	} else if (starts(line, "quit")) {
		test_pass(N);
	} else if (line[0]) {
		printf_serial("UNKNOWN %s\n", line);
	}
}

static void poll_serial(void)
{
	static char line[64];
	static unsigned len;
	for (int guard = 0; guard < 64 && (inb(COM1 + 5) & 1); guard++) {
		char ch = (char)inb(COM1);
		if (ch == '\r')
			continue;
		if (ch == '\n') {
			line[len] = 0;
			len = 0;
			command(line);
			continue;
		}
		if (len < sizeof(line) - 1)
			line[len++] = ch;
	}
}

/* ---- start-up ---- */

static void memory_layout(void)
{
	uint64_t ram_end = 0, low_max = 0, high = 0;
	for (unsigned i = 0; i < e820_entries(); i++) {
		uint64_t a, s;
		if (e820_entry(i, &a, &s) != 1)
			continue;
		if (a >= 0x100000000ULL)
			high += s;
		else if (a + s > low_max)
			low_max = a + s;
		if (a <= BASE && a + s > BASE)
			ram_end = a + s;
	}
	if (ram_end > 0xC0000000ULL)
		ram_end = 0xC0000000ULL;
	CHECK_OR_FAIL(ram_end > BASE, N);
	memtot = low_max + high;
	npages = (ram_end - BASE) / PAGE;
	hint_bal_lo = hint_free_lo = 0;
	hint_used_hi = 0;
}

static void balloon_setup(void);

void user_main(void)
{
	memory_layout();
	uint64_t fill = cmdline_num("fill", 64);
	keep_pages = cmdline_num("keep", 0) * 256;
	CHECK_OR_FAIL(fill * 256 <= npages, N);
	use_pages(fill * 256);
	printf_serial("FILLED %u\n", (unsigned long)fill);

	/* No balloon device (a VM without --balloon, for comparison): the same
	 * guest, serving its commands only. */
	bool have_dev = vdev_open(&dev, 5);
	if (!have_dev)
		printf_serial("NO-BALLOON\n");
	else
		balloon_setup();

	uint64_t last = 0, seen_target = 0;
	bool announced = true;
	for (;;) {
		uint64_t now = rdtsc();
		if (now - last >= POLL_TICKS) {
			last = now;
			uint64_t target = have_dev ? mmio_r32(dev.devcfg) : 0;
			if (target != seen_target) {
				seen_target = target;
				announced = false;
			}
			poll_serial();
		}
		if (have_dev)
			poll_stats();
		serve_use();
		if (n_balloon < seen_target && next_for_balloon() < npages) {
			inflate(seen_target - n_balloon);
		} else if (n_balloon > seen_target) {
			deflate(n_balloon - seen_target);
		} else if (!announced && n_balloon == seen_target) {
			announced = true;
			printf_serial("BALLOON %u\n", (unsigned long)n_balloon);
		}
		__asm__ volatile("pause");
	}
}

/* Negotiate, set up the queues as Linux numbers them, prime the stats. */
static void balloon_setup(void)
{
	CHECK_OR_FAIL(vdev_negotiate(&dev, 1ULL << F_STATS | 1ULL << F_DEFLATE_ON_OOM |
						   1ULL << F_REPORTING), N);
	has_stats = dev.features >> F_STATS & 1;
	has_reporting = dev.features >> F_REPORTING & 1;
	has_doom = dev.features >> F_DEFLATE_ON_OOM & 1;
	/* Queues are numbered as Linux does: only those whose feature is on. */
	uint16_t qi = 0;
	CHECK_OR_FAIL(vq_setup(&dev, &inflq, qi++, 16, ring_i, 0xffff), N);
	CHECK_OR_FAIL(vq_setup(&dev, &deflq, qi++, 16, ring_d, 0xffff), N);
	if (has_stats)
		CHECK_OR_FAIL(vq_setup(&dev, &statq, qi++, 16, ring_s, 0xffff), N);
	if (has_reporting)
		CHECK_OR_FAIL(vq_setup(&dev, &repq, qi++, 64, ring_r, 0xffff), N);
	if (has_stats)
		post_stats(); /* primed before DRIVER_OK, as Linux does */
	vdev_driver_ok(&dev);
	printf_serial("BALLOON-READY stats=%u reporting=%u\n", (unsigned long)has_stats,
		      (unsigned long)has_reporting);
}
