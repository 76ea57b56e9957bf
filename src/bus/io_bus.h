/*
 * Port-I/O and MMIO dispatch: a table of address ranges, each with a handler.
 * vCPU threads look ranges up concurrently; (un)registration takes the write
 * side of a rwlock (PCI BAR moves happen at run time).
 */
#ifndef POCKETVM_IO_BUS_H
#define POCKETVM_IO_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define IO_BUS_MAX 64

/*
 * A handler gets the offset from the start of its range, the access size
 * (1, 2, 4 or 8) and a little-endian data buffer: filled by the handler on a
 * read, holding the value on a write.
 */
typedef void (*io_handler_fn)(void *opaque, uint64_t offset, uint8_t *data,
			      uint32_t size, bool is_write);

struct io_range {
	uint64_t base;
	uint64_t len;
	io_handler_fn fn;
	void *opaque;
	const char *name;
};

struct io_bus {
	const char *name; /* "pio" or "mmio" */
	pthread_rwlock_t lock;
	struct io_range range[IO_BUS_MAX];
	int nr;
};

void io_bus_init(struct io_bus *bus, const char *name);

/* Register [base, base+len); overlapping an existing range is -EBUSY. */
int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len,
		    io_handler_fn fn, void *opaque, const char *name);

/* Remove the range registered at @base for @opaque; -ENOENT if none. */
int io_bus_unregister(struct io_bus *bus, uint64_t base, void *opaque);

/*
 * Dispatch one access. Unclaimed reads return all ones, unclaimed writes are
 * dropped (as on real hardware); returns false in that case.
 */
bool io_bus_access(struct io_bus *bus, uint64_t addr, uint8_t *data,
		   uint32_t size, bool is_write);

#endif
