#define _GNU_SOURCE
#include "core/config.h"
#include "core/log.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef POCKETVM_DEFAULT_KERNEL
#define POCKETVM_DEFAULT_KERNEL ""
#endif
#ifndef POCKETVM_DEFAULT_INITRD
#define POCKETVM_DEFAULT_INITRD ""
#endif
#ifndef POCKETVM_DEFAULT_CMDLINE
#define POCKETVM_DEFAULT_CMDLINE "console=ttyS0"
#endif

static const char default_kernel[] = POCKETVM_DEFAULT_KERNEL;
static const char default_initrd[] = POCKETVM_DEFAULT_INITRD;

static void usage_run(FILE *f)
{
	fprintf(f,
		"usage: pocketvm run [--kernel FILE] [--initrd FILE] [--cmdline TEXT]\n"
		"                    [--mem SIZE] [--cpus N] [--disk FILE[,ro][,serial=ID]]...\n"
		"                    [--api PATH] [--no-rng] [--balloon[=OPTS]] [--verbose]\n"
		"       pocketvm run --restore DIR [--disk FILE]... [--api PATH]\n"
		"       pocketvm run ... --state DIR\n\n"
		"Boot a guest. The console is this terminal (raw mode when stdin is a\n"
		"terminal: C-a x quits, C-a h helps). The VM ends with status 0 when the\n"
		"guest reboots or on quit, non-zero on a triple fault (2), a KVM internal\n"
		"error (3) or any other failure (1).\n\n"
		"Options:\n"
		"  --kernel FILE    vmlinux (ELF) or bzImage (gzip/xz/zstd/lz4 payloads are\n"
		"                   decompressed on the host), or any x86-64 ELF with\n"
		"                   physical load addresses. Default: the guest built by\n"
		"                   `make guest` (%s)\n"
		"  --initrd FILE    initramfs. Default with the default kernel: %s\n"
		"  --cmdline TEXT   kernel command line. Default: the default guest's\n"
		"                   (guest/cmdline.txt)\n"
		"  --mem SIZE       guest RAM, a multiple of 2M, e.g. 512M, 4G (default 512M);\n"
		"                   RAM beyond 3G is placed above 4G\n"
		"  --cpus N         vCPUs, 1-%d (default %d)\n"
		"  --disk SPEC      virtio-blk disk from a raw image file; repeatable (up to %d).\n"
		"                   SPEC is FILE[,ro][,serial=ID]; the serial defaults to\n"
		"                   the file name (20 bytes at most)\n"
		"  --api PATH       control socket (mode 0600) for `pocketvm ctl`\n"
		"  --no-rng         no virtio-rng entropy device\n"
		"  --balloon[=OPTS] virtio-balloon: `pocketvm ctl PATH balloon MIB` takes memory\n"
		"                   back from the guest, `ctl PATH stats` shows the guest's\n"
		"                   memory statistics; pages the guest reports free return to\n"
		"                   the host. OPTS, comma-separated, switch features off:\n"
		"                   nostats, nodeflate-on-oom, noreporting\n"
		"  --balloon-policy SPEC\n"
		"                   how the balloon follows host memory pressure and the\n"
		"                   app's foreground/background state (on by default with\n"
		"                   --balloon): off, or a comma list of KEY=VALUE:\n"
		"                   fg-limit=0.75  bg-limit=0.95  guest pressure limits\n"
		"                   margin=64M step=128M floor=64M hold=10s\n"
		"                   stall-rate=15M (bytes/s: a slower balloon has stalled)\n"
		"                   interval=250ms stats-interval=1s\n"
		"                   start=foreground|background  oom-adj=on|off\n"
		"                   fg-adj=200 bg-adj=900 (oom_score_adj: <= fg-adj is the\n"
		"                   foreground, >= bg-adj the background)\n"
		"                   minfree=P:P:.. adj=A:A:.. (low-memory-killer table when\n"
		"                   the kernel has none; default Android's)\n"
		"                   count-cache=off (on: the guest's page cache counts as\n"
		"                   used memory, as (total - free) / total)\n"
		"  --metrics FILE   write the balloon controller's samples and decisions to\n"
		"                   FILE as JSON lines (tools/plot-balloon draws them)\n"
		"  --restore DIR    resume the snapshot in DIR (from `pocketvm ctl PATH snapshot\n"
		"                   DIR`): memory, vCPUs, devices, disks and command line come\n"
		"                   from it; --disk may give other paths for its disks, in order\n"
		"  --state DIR      app lifecycle: restore from DIR when it holds a valid\n"
		"                   snapshot, else boot; on SIGTERM, SIGINT or `ctl quit` save\n"
		"                   to DIR and exit; a guest reboot/power-off deletes it\n"
		"  --force-disks    restore even if a disk changed since the snapshot\n"
		"  --restore-mode M how guest memory comes back: loadset (default, the fastest\n"
		"                   in bench/snapshot: map the memory file, then prefetch the\n"
		"                   pages the guest touched first last time, recorded in DIR,\n"
		"                   while it runs), lazy (map it; pages load when first\n"
		"                   touched), eager (read it all before the guest runs), or\n"
		"                   loadset-uffd (RAM filled through userfaultfd, the loading\n"
		"                   set first)\n"
		"  -v, --verbose    more log lines (repeat for debug)\n"
		"  -q, --quiet      errors only\n"
		"  -h, --help       this text\n",
		default_kernel, default_initrd, VM_MAX_VCPUS, CONFIG_DEFAULT_CPUS,
		VM_MAX_DISKS);
}

int config_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return -EINVAL;
	if (shift && v > (~0ULL >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int config_parse_disk(char *spec, struct disk_config *d, char *err, size_t errlen)
{
	char *save = NULL, *tok;

	memset(d, 0, sizeof(*d));
	if (spec[0] == ',')
		spec = (char *)"";
	tok = strtok_r(spec, ",", &save);
	if (!tok || !*tok) {
		snprintf(err, errlen, "--disk needs a file name");
		return -EINVAL;
	}
	d->path = tok;
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (!strcmp(tok, "ro")) {
			d->readonly = true;
		} else if (!strcmp(tok, "rw")) {
			d->readonly = false;
		} else if (!strncmp(tok, "serial=", 7)) {
			d->serial = tok + 7;
			if (strlen(d->serial) > 20) {
				snprintf(err, errlen, "--disk %s: serial is longer than 20 bytes",
					 d->path);
				return -EINVAL;
			}
		} else {
			snprintf(err, errlen, "--disk %s: unknown option '%s' (expected ro, rw or serial=ID)",
				 d->path, tok);
			return -EINVAL;
		}
	}
	return 0;
}

int config_parse_balloon(const char *opts, struct balloon_config *b, char *err, size_t errlen)
{
	static const struct { const char *name; size_t off; } off[] = {
		{ "nostats", offsetof(struct balloon_config, stats) },
		{ "nodeflate-on-oom", offsetof(struct balloon_config, deflate_on_oom) },
		{ "noreporting", offsetof(struct balloon_config, free_page_reporting) },
	};
	const char *p = opts ? opts : "";

	*b = (struct balloon_config){ .stats = true, .deflate_on_oom = true,
				      .free_page_reporting = true };
	while (*p) {
		size_t n = strcspn(p, ",");
		size_t i;
		for (i = 0; i < sizeof(off) / sizeof(off[0]); i++)
			if (n == strlen(off[i].name) && !strncmp(p, off[i].name, n))
				break;
		if (i == sizeof(off) / sizeof(off[0])) {
			snprintf(err, errlen, "--balloon: unknown option '%.*s' (expected nostats, "
				 "nodeflate-on-oom or noreporting)", (int)(n < 64 ? n : 64), p);
			return -EINVAL;
		}
		*(bool *)((char *)b + off[i].off) = false;
		p += n;
		if (*p == ',' && !*++p) {
			snprintf(err, errlen, "--balloon: empty option after ','");
			return -EINVAL;
		}
	}
	return 0;
}

int config_parse_run(int argc, char **argv, struct vm_config *cfg)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'p' },
		{ "disk", required_argument, NULL, 'd' },
		{ "api", required_argument, NULL, 'a' },
		{ "no-rng", no_argument, NULL, 'R' },
		{ "balloon", optional_argument, NULL, 'B' },
		{ "balloon-policy", required_argument, NULL, 'P' },
		{ "metrics", required_argument, NULL, 'X' },
		{ "restore", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 's' },
		{ "force-disks", no_argument, NULL, 'f' },
		{ "restore-mode", required_argument, NULL, 'M' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char err[256];
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = CONFIG_DEFAULT_MEM;
	cfg->cpus = CONFIG_DEFAULT_CPUS;
	cfg->rng = true;
	bctl_config_default(&cfg->bctl);
	cfg->restore_mode = RESTORE_LOADSET; /* bench/snapshot: running and working set soonest */
	optind = 1;
	while ((c = getopt_long(argc, argv, "vqh", opts, NULL)) != -1) {
		switch (c) {
		case 'k': cfg->kernel = optarg; break;
		case 'i': cfg->initrd = optarg; break;
		case 'c': cfg->cmdline = optarg; break;
		case 'a': cfg->api_path = optarg; break;
		case 'R': cfg->rng = false; break;
		case 'P':
			if (bctl_config_parse(optarg, &cfg->bctl, err, sizeof(err))) {
				fprintf(stderr, "pocketvm: %s\n", err);
				return CONFIG_ERROR;
			}
			break;
		case 'X':
			if (strlen(optarg) >= sizeof(cfg->bctl.metrics_path)) {
				fprintf(stderr, "pocketvm: --metrics: path too long\n");
				return CONFIG_ERROR;
			}
			snprintf(cfg->bctl.metrics_path, sizeof(cfg->bctl.metrics_path), "%s", optarg);
			break;
		case 'B':
			if (config_parse_balloon(optarg, &cfg->balloon, err, sizeof(err))) {
				fprintf(stderr, "pocketvm: %s\n", err);
				return CONFIG_ERROR;
			}
			cfg->balloon_enabled = true;
			break;
		case 'r': cfg->restore_dir = optarg; break;
		case 's': cfg->state_dir = optarg; break;
		case 'f': cfg->force_disks = true; break;
		case 'M':
			if (!strcmp(optarg, "eager")) {
				cfg->restore_mode = RESTORE_EAGER;
			} else if (!strcmp(optarg, "lazy")) {
				cfg->restore_mode = RESTORE_LAZY;
			} else if (!strcmp(optarg, "loadset")) {
				cfg->restore_mode = RESTORE_LOADSET;
			} else if (!strcmp(optarg, "loadset-uffd")) {
				cfg->restore_mode = RESTORE_LOADSET_UFFD;
			} else {
				fprintf(stderr, "pocketvm: --restore-mode %s: expected eager, lazy, "
						"loadset or loadset-uffd\n",
					optarg);
				return CONFIG_ERROR;
			}
			break;
		case 'v': log_level++; break;
		case 'q': log_level = 0; break;
		case 'h': usage_run(stdout); return CONFIG_HELP;
		case 'm':
			if (config_parse_size(optarg, &cfg->mem_size) || cfg->mem_size == 0 ||
			    cfg->mem_size % (2ULL << 20) || cfg->mem_size < (32ULL << 20) ||
			    cfg->mem_size > (1ULL << 40)) {
				fprintf(stderr, "pocketvm: --mem %s: expected a size that is a multiple "
						"of 2M between 32M and 1T, e.g. 512M or 2G\n", optarg);
				return CONFIG_ERROR;
			}
			break;
		case 'p': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > VM_MAX_VCPUS) {
				fprintf(stderr, "pocketvm: --cpus %s: expected 1 to %d\n", optarg,
					VM_MAX_VCPUS);
				return CONFIG_ERROR;
			}
			cfg->cpus = (int)n;
			break;
		}
		case 'd':
			if (cfg->nr_disks == VM_MAX_DISKS) {
				fprintf(stderr, "pocketvm: at most %d disks\n", VM_MAX_DISKS);
				return CONFIG_ERROR;
			}
			if (config_parse_disk(optarg, &cfg->disk[cfg->nr_disks], err, sizeof(err))) {
				fprintf(stderr, "pocketvm: %s\n", err);
				return CONFIG_ERROR;
			}
			cfg->nr_disks++;
			break;
		default:
			fprintf(stderr, "pocketvm: try pocketvm run --help\n");
			return CONFIG_ERROR;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pocketvm: unexpected argument '%s' (try pocketvm run --help)\n",
			argv[optind]);
		return CONFIG_ERROR;
	}
	if (cfg->restore_dir && cfg->state_dir) {
		fprintf(stderr, "pocketvm: --restore and --state exclude each other\n");
		return CONFIG_ERROR;
	}
	if (cfg->restore_dir) {
		if (cfg->kernel || cfg->initrd || cfg->cmdline) {
			fprintf(stderr, "pocketvm: --restore takes the kernel and command line from "
					"the snapshot; drop --kernel/--initrd/--cmdline\n");
			return CONFIG_ERROR;
		}
		cfg->console_raw = isatty(STDIN_FILENO);
		return CONFIG_OK;
	}
	if (!cfg->kernel) {
		if (!default_kernel[0] || access(default_kernel, R_OK) != 0) {
			fprintf(stderr, "pocketvm: no --kernel given and the default guest is not built "
					"(run `make guest`)\n");
			return CONFIG_ERROR;
		}
		cfg->kernel = default_kernel;
		if (!cfg->initrd && default_initrd[0] && access(default_initrd, R_OK) == 0)
			cfg->initrd = default_initrd;
	}
	if (!cfg->cmdline)
		cfg->cmdline = POCKETVM_DEFAULT_CMDLINE;
	cfg->console_raw = isatty(STDIN_FILENO);
	return CONFIG_OK;
}
