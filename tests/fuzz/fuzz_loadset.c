/* libFuzzer: the loading-set file's metadata (header, index, chunk CRCs). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/le.h"
#include "snapshot/loadset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[160];
	uint64_t len;
	struct loadset ls;

	if (loadset_meta_len(data, size, &len, why, sizeof(why)))
		return 0;
	/* The file size its header implies, so parsing goes past that check. */
	uint64_t runs = le32(data + 48), pages = le64(data + 52);
	uint64_t file = loadset_data_offset((uint32_t)runs, pages) + pages * LOADSET_PAGE;
	struct loadset_bind want;
	memcpy(want.uuid, data + 16, 16);
	want.gen = le64(data + 32);
	want.ram_size = le64(data + 40);
	if (loadset_parse(data, size, file, &want, &ls, why, sizeof(why)) == 0)
		loadset_free(&ls);
	loadset_parse(data, size, file, NULL, &ls, why, sizeof(why));
	loadset_free(&ls);
	return 0;
}
