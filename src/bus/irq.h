/*
 * Interrupt routing for the in-kernel irqchip: the KVM GSI routing table
 * (IOAPIC/PIC pins plus MSI routes), irqfd binding and legacy lines.
 * All interrupt delivery in the hot path goes through irqfds: a device
 * thread writes an eventfd and KVM injects, with no exit to userspace.
 */
#ifndef POCKETVM_IRQ_H
#define POCKETVM_IRQ_H

#include <pthread.h>
#include <stdint.h>

#define IRQ_MAX_ROUTES 512
#define IRQ_FIRST_MSI_GSI 24

struct irq_route {
	uint32_t gsi;
	uint32_t type; /* KVM_IRQ_ROUTING_IRQCHIP or KVM_IRQ_ROUTING_MSI */
	uint32_t chip, pin;
	uint64_t msi_addr;
	uint32_t msi_data;
	uint8_t used;
};

struct irq_router {
	int vm_fd;
	pthread_mutex_t lock;
	struct irq_route route[IRQ_MAX_ROUTES];
	int nr;
	uint8_t msi_gsi_used[IRQ_MAX_ROUTES];
};

/* Install the default ISA/IOAPIC routes. Returns 0 or a negative errno. */
int irq_init(struct irq_router *ir, int vm_fd);

/* Allocate a GSI for MSI routes; returns the GSI or a negative errno. */
int irq_msi_alloc(struct irq_router *ir);

/* Point MSI GSI @gsi at (@addr, @data) and commit the table to KVM. */
int irq_msi_set(struct irq_router *ir, uint32_t gsi, uint64_t addr, uint32_t data);

/* Release an MSI GSI (its route is removed). */
void irq_msi_free(struct irq_router *ir, uint32_t gsi);

/* Bind (@assign) or unbind an eventfd to @gsi with KVM_IRQFD. */
int irq_irqfd(int vm_fd, int efd, uint32_t gsi, int assign);

/* Set a legacy interrupt line (IOAPIC/PIC pin) to @level. */
int irq_line(int vm_fd, uint32_t gsi, int level);

#endif
