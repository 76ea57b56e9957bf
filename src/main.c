/*
 * pocketvm: command line -> configuration -> run. Nothing else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/config.h"
#include "core/log.h"
#include "core/vm.h"
#include "snapshot/snapshot.h"

static void usage_main(FILE *f)
{
	fprintf(f,
		"usage: pocketvm COMMAND [OPTIONS]\n\n"
		"Run an operating system on KVM.\n\n"
		"Commands:\n"
		"  run     boot a guest (pocketvm run --help)\n"
		"  ctl     control a running VM over its --api socket (pocketvm ctl --help)\n"
		"  help    this text\n\n"
		"Options:\n"
		"  -h, --help     this text\n"
		"  -V, --version  print the version\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage_main(stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("pocketvm %s\n", POCKETVM_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "ctl"))
		return api_client_main(argc - 1, argv + 1);
	if (strcmp(cmd, "run") != 0) {
		fprintf(stderr, "pocketvm: unknown command '%s' (try pocketvm --help)\n", cmd);
		return 2;
	}

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct vm_config cfg;
	int r = config_parse_run(argc - 1, argv + 1, &cfg);
	if (r != CONFIG_OK)
		return r == CONFIG_HELP ? 0 : 2;
	cfg.start_ns = (uint64_t)t0.tv_sec * 1000000000ULL + (uint64_t)t0.tv_nsec;

	/* --restore, or --state with a snapshot in it: the machine comes from there. */
	struct snap_image *img = NULL;
	char err[512];
	const char *from = cfg.restore_dir;
	if (cfg.state_dir) {
		char probe[4200];
		snprintf(probe, sizeof(probe), "%s/state", cfg.state_dir);
		if (access(probe, F_OK) == 0)
			from = cfg.state_dir;
	}
	if (from) {
		img = snapshot_open(from, &cfg, err, sizeof(err));
		if (!img && cfg.restore_dir) {
			pr_err("cannot restore %s: %s", from, err);
			return 1;
		}
		if (!img)
			pr_warn("state %s is not a usable snapshot (%s); booting instead", from, err);
	}
	if (!img && !cfg.kernel) {
		pr_err("nothing to boot: no snapshot and no kernel");
		return 1;
	}

	sigset_t stop;
	vm_stop_signals(&stop);
	pthread_sigmask(SIG_BLOCK, &stop, NULL); /* before any thread exists */

	/* The control socket exists before anything runs or is logged, so a
	 * client that saw the VM start can always connect. */
	struct api_server api = { .listen_fd = -1 };
	if (cfg.api_path && api_server_open(&api, cfg.api_path)) {
		snapshot_close(img);
		return 1;
	}

	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return 1;
	r = vm_create(vm, &cfg, img);
	if (r) {
		vm_destroy(vm);
		free(vm);
		api_server_close(&api);
		snapshot_close(img);
		return 1;
	}
	if (img)
		pr_info("restored from %s", from);
	int status = vm_run(vm, &api);
	api_server_close(&api);
	/* A guest that reboots or powers off leaves no state: the next launch boots. */
	if (cfg.state_dir && vm->exit == VM_EXIT_RESET)
		snapshot_remove(cfg.state_dir);
	if (vm->exit != VM_EXIT_RESET && vm->exit != VM_EXIT_QUIT)
		pr_err("VM stopped: %s", vm_exit_name(vm->exit));
	else
		pr_info("VM stopped: %s", vm_exit_name(vm->exit));
	vm_destroy(vm);
	free(vm);
	snapshot_close(img);
	return status;
}
