/*
 * Command-line parsing for `pocketvm run` into a validated vm_config.
 */
#ifndef POCKETVM_CONFIG_H
#define POCKETVM_CONFIG_H

#include <stdint.h>

#include "core/vm.h"

#define CONFIG_OK 0
#define CONFIG_HELP 1
#define CONFIG_ERROR 2

#define CONFIG_DEFAULT_MEM (512ULL << 20)
#define CONFIG_DEFAULT_CPUS 2

/*
 * config_parse_run - parse `run` options (argv[0] is "run"). Prints help or a
 * clear error itself. Returns CONFIG_OK, CONFIG_HELP or CONFIG_ERROR.
 */
int config_parse_run(int argc, char **argv, struct vm_config *cfg);

/*
 * config_parse_size - "512M", "1G", "1048576", "64K": bytes. Pure.
 * Returns 0 or -EINVAL (bad syntax, overflow).
 */
int config_parse_size(const char *s, uint64_t *out);

/* config_parse_disk - "PATH[,ro][,serial=ID]" into @d. Pure (no I/O). */
int config_parse_disk(char *spec, struct disk_config *d, char *err, size_t errlen);

/*
 * config_parse_balloon - the OPTS of --balloon[=OPTS] (NULL or "": every
 * feature on; "nostats", "nodeflate-on-oom", "noreporting", comma-separated,
 * switch one off) into @b. Pure. 0, or -EINVAL with a message in @err.
 */
int config_parse_balloon(const char *opts, struct balloon_config *b, char *err, size_t errlen);

#endif
