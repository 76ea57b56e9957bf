/* libFuzzer: kernel loading (ELF and bzImage with compressed payloads). */
#include <stdint.h>
#include <stdlib.h>

#include "arch/x86_64/loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM (32u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static struct guest_mem gm;
	struct kernel_info ki;
	char err[512];

	if (!ram) {
		ram = malloc(RAM);
		gm_init_fake(&gm, ram, 0, RAM);
		loader_max_image = 64u << 20; /* keep decompression bombs within the RSS limit */
	}
	if (kernel_load_buf(&gm, data, size, &ki, err, sizeof(err)) == 0 &&
	    (ki.load_end > RAM || ki.load_start >= ki.load_end || ki.entry < ki.load_start ||
	     ki.entry >= ki.load_end))
		__builtin_trap(); /* a loaded image must lie in RAM with its entry inside */
	return 0;
}
