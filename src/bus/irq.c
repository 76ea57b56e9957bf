#include "bus/irq.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/log.h"

static int irq_commit(struct irq_router *ir)
{
	struct kvm_irq_routing *tbl;
	int n = 0;

	tbl = calloc(1, sizeof(*tbl) + IRQ_MAX_ROUTES * sizeof(tbl->entries[0]));
	if (!tbl)
		return -ENOMEM;
	for (int i = 0; i < ir->nr; i++) {
		struct irq_route *r = &ir->route[i];
		struct kvm_irq_routing_entry *e = &tbl->entries[n++];

		e->gsi = r->gsi;
		e->type = r->type;
		if (r->type == KVM_IRQ_ROUTING_IRQCHIP) {
			e->u.irqchip.irqchip = r->chip;
			e->u.irqchip.pin = r->pin;
		} else {
			e->u.msi.address_lo = (uint32_t)r->msi_addr;
			e->u.msi.address_hi = (uint32_t)(r->msi_addr >> 32);
			e->u.msi.data = r->msi_data;
		}
	}
	tbl->nr = (uint32_t)n;
	int ret = ioctl(ir->vm_fd, KVM_SET_GSI_ROUTING, tbl) < 0 ? -errno : 0;
	free(tbl);
	if (ret)
		pr_err("irq: KVM_SET_GSI_ROUTING: %s", strerror(-ret));
	return ret;
}

static void irq_add_chip(struct irq_router *ir, uint32_t gsi, uint32_t chip, uint32_t pin)
{
	ir->route[ir->nr++] = (struct irq_route){ .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
						  .chip = chip, .pin = pin, .used = 1 };
}

int irq_init(struct irq_router *ir, int vm_fd)
{
	memset(ir, 0, sizeof(*ir));
	ir->vm_fd = vm_fd;
	pthread_mutex_init(&ir->lock, NULL);
	for (uint32_t i = 0; i < 16; i++) {
		if (i == 2)
			continue;
		irq_add_chip(ir, i, i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, i % 8);
	}
	for (uint32_t i = 0; i < 24; i++)
		irq_add_chip(ir, i, KVM_IRQCHIP_IOAPIC, i);
	return irq_commit(ir);
}

int irq_msi_alloc(struct irq_router *ir)
{
	pthread_mutex_lock(&ir->lock);
	for (int g = IRQ_FIRST_MSI_GSI; g < IRQ_MAX_ROUTES; g++) {
		if (!ir->msi_gsi_used[g]) {
			ir->msi_gsi_used[g] = 1;
			pthread_mutex_unlock(&ir->lock);
			return g;
		}
	}
	pthread_mutex_unlock(&ir->lock);
	return -ENOSPC;
}

int irq_msi_set(struct irq_router *ir, uint32_t gsi, uint64_t addr, uint32_t data)
{
	int ret;

	pthread_mutex_lock(&ir->lock);
	int i;
	for (i = 0; i < ir->nr; i++)
		if (ir->route[i].gsi == gsi && ir->route[i].type == KVM_IRQ_ROUTING_MSI)
			break;
	if (i == ir->nr) {
		if (ir->nr == IRQ_MAX_ROUTES) {
			pthread_mutex_unlock(&ir->lock);
			return -ENOSPC;
		}
		ir->nr++;
	}
	ir->route[i] = (struct irq_route){ .gsi = gsi, .type = KVM_IRQ_ROUTING_MSI,
					   .msi_addr = addr, .msi_data = data, .used = 1 };
	ret = irq_commit(ir);
	pthread_mutex_unlock(&ir->lock);
	return ret;
}

void irq_msi_free(struct irq_router *ir, uint32_t gsi)
{
	pthread_mutex_lock(&ir->lock);
	for (int i = 0; i < ir->nr; i++) {
		if (ir->route[i].gsi == gsi && ir->route[i].type == KVM_IRQ_ROUTING_MSI) {
			ir->route[i] = ir->route[--ir->nr];
			irq_commit(ir);
			break;
		}
	}
	if (gsi < IRQ_MAX_ROUTES)
		ir->msi_gsi_used[gsi] = 0;
	pthread_mutex_unlock(&ir->lock);
}

int irq_irqfd(int vm_fd, int efd, uint32_t gsi, int assign)
{
	struct kvm_irqfd req = { .fd = (uint32_t)efd, .gsi = gsi,
				 .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };
	return ioctl(vm_fd, KVM_IRQFD, &req) < 0 ? -errno : 0;
}

int irq_line(int vm_fd, uint32_t gsi, int level)
{
	struct kvm_irq_level l = { .irq = gsi, .level = (uint32_t)level };
	return ioctl(vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}
