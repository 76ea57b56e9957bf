/* libFuzzer: control-socket request parsing. */
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_request req;
	char err[128];

	if (api_parse_request((const char *)data, size, &req, err, sizeof(err)) == 0 &&
	    ((unsigned)req.cmd > API_CMD_SNAPSHOT ||
	     (req.cmd == API_CMD_SNAPSHOT && req.path[0] != '/')))
		__builtin_trap(); /* the parser must only produce known commands */
	return 0;
}
