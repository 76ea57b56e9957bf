/*
 * hostalloc: the host app of bench/balloon. Reads commands on stdin:
 *   alloc N   allocate N more MiB in 4 MiB chunks, writing every page, at
 *             most RATE MiB/s (0: as fast as it can) ->
 *             "ALLOCATED N total T ms M" (M: wall time of this allocation)
 *   free      release everything -> "FREED"
 *   quit      exit
 * usage: hostalloc [RATE]
 * Built by bench/balloon with the system compiler; not part of pocketvm.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define CHUNK (4UL << 20)
#define MAX_CHUNKS 4096

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void pause_until(double t_ms)
{
	double left = t_ms - now_ms();
	if (left <= 0)
		return;
	struct timespec ts = { (time_t)(left / 1e3), (long)((left - (double)(long)(left / 1e3) * 1e3) * 1e6) };
	nanosleep(&ts, NULL); /* pacing the allocation rate, not synchronisation */
}

int main(int argc, char **argv)
{
	static void *chunk[MAX_CHUNKS];
	unsigned n = 0;
	double rate = argc > 1 ? atof(argv[1]) : 0; /* MiB/s */
	char line[128];

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("READY\n");
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long mib;
		if (sscanf(line, "alloc %lu", &mib) == 1) {
			double t0 = now_ms();
			unsigned want = (unsigned)((mib << 20) / CHUNK), k;
			for (k = 0; k < want && n < MAX_CHUNKS; k++) {
				char *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
					       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				if (p == MAP_FAILED) {
					printf("ENOMEM after %u MiB\n", k * 4);
					break;
				}
				for (unsigned long o = 0; o < CHUNK; o += 4096)
					p[o] = (char)(1 + (o >> 12));
				chunk[n++] = p;
				if (rate > 0)
					pause_until(t0 + (double)(k + 1) * 4.0 / rate * 1e3);
			}
			printf("ALLOCATED %u total %u ms %.1f\n", k * 4, n * 4, now_ms() - t0);
		} else if (!strncmp(line, "free", 4)) {
			while (n)
				munmap(chunk[--n], CHUNK);
			printf("FREED\n");
		} else if (!strncmp(line, "quit", 4)) {
			return 0;
		}
	}
	return 0;
}
