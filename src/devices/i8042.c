/*
 * Just enough of the i8042 keyboard controller for the guest's reset: the
 * "pulse reset line" command (0xFE to port 0x64) ends the VM as a reboot.
 * Reads report an empty controller so probing drivers give up quickly.
 */
#include "devices/i8042.h"

#include <string.h>

#include "core/log.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define I8042_CMD_RESET 0xfe

static void i8042_data(void *opaque, uint64_t off, uint8_t *data, uint32_t size, bool is_write)
{
	(void)opaque;
	(void)off;
	if (!is_write)
		memset(data, 0, size); /* no data */
}

static void i8042_cmd(void *opaque, uint64_t off, uint8_t *data, uint32_t size, bool is_write)
{
	struct vm *vm = opaque;

	(void)off;
	if (!is_write) {
		memset(data, 0, size); /* status: output and input buffers empty */
		return;
	}
	if (data[0] == I8042_CMD_RESET) {
		pr_info("i8042: guest requested reset");
		vm_request_exit(vm, VM_EXIT_RESET);
	}
}

int i8042_create(struct vm *vm)
{
	int r = io_bus_register(&vm->pio, I8042_DATA, 1, i8042_data, vm, "i8042-data");
	if (r)
		return r;
	return io_bus_register(&vm->pio, I8042_CMD, 1, i8042_cmd, vm, "i8042-cmd");
}
