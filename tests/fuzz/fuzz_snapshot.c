/* libFuzzer: the snapshot state-file loader (header, sections, CPU state). */
#include <stddef.h>
#include <stdint.h>

#include "snapshot/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	snapshot_parse(data, size, NULL, err, sizeof(err));
	return 0;
}
