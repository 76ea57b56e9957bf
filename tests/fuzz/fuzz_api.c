/* libFuzzer: control-socket request parsing. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_request req;
	char err[128];

	if (api_parse_request((const char *)data, size, &req, err, sizeof(err)) == 0 &&
	    (!strcmp(api_cmd_name(req.cmd), "?") ||
	     (req.cmd == API_CMD_SNAPSHOT && req.path[0] != '/') ||
	     req.mib > API_MAX_MIB || (req.cmd != API_CMD_BALLOON && req.mib)))
		__builtin_trap(); /* the parser must only produce known, bounded commands */
	return 0;
}
