#include "bus/io_bus.h"

#include <errno.h>
#include <string.h>

void io_bus_init(struct io_bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
	pthread_rwlock_init(&bus->lock, NULL);
}

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len,
		    io_handler_fn fn, void *opaque, const char *name)
{
	int ret = 0;

	if (len == 0 || base + len < base)
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	if (bus->nr == IO_BUS_MAX) {
		ret = -ENOSPC;
		goto out;
	}
	for (int i = 0; i < bus->nr; i++) {
		struct io_range *r = &bus->range[i];
		if (base < r->base + r->len && r->base < base + len) {
			ret = -EBUSY;
			goto out;
		}
	}
	bus->range[bus->nr++] = (struct io_range){ base, len, fn, opaque, name };
out:
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

int io_bus_unregister(struct io_bus *bus, uint64_t base, void *opaque)
{
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	for (int i = 0; i < bus->nr; i++) {
		if (bus->range[i].base == base && bus->range[i].opaque == opaque) {
			bus->range[i] = bus->range[--bus->nr];
			ret = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

bool io_bus_access(struct io_bus *bus, uint64_t addr, uint8_t *data,
		   uint32_t size, bool is_write)
{
	pthread_rwlock_rdlock(&bus->lock);
	for (int i = 0; i < bus->nr; i++) {
		struct io_range *r = &bus->range[i];
		if (addr >= r->base && addr - r->base < r->len) {
			io_handler_fn fn = r->fn;
			void *opaque = r->opaque;
			uint64_t off = addr - r->base;
			pthread_rwlock_unlock(&bus->lock);
			fn(opaque, off, data, size, is_write);
			return true;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
	if (!is_write)
		memset(data, 0xff, size);
	return false;
}
