/*
 * pocketvm: command line -> configuration -> run. Nothing else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "core/config.h"
#include "core/log.h"
#include "core/vm.h"

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

	struct vm_config cfg;
	int r = config_parse_run(argc - 1, argv + 1, &cfg);
	if (r != CONFIG_OK)
		return r == CONFIG_HELP ? 0 : 2;

	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return 1;
	r = vm_create(vm, &cfg);
	if (r) {
		vm_destroy(vm);
		free(vm);
		return 1;
	}
	int status = vm_run(vm);
	if (vm->exit != VM_EXIT_RESET && vm->exit != VM_EXIT_QUIT)
		pr_err("VM stopped: %s", vm_exit_name(vm->exit));
	else
		pr_info("VM stopped: %s", vm_exit_name(vm->exit));
	vm_destroy(vm);
	free(vm);
	return status;
}
