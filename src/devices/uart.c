/*
 * 16550A UART. The register model is pure (uart_reg_read/write with effects
 * through uart_ops) so unit tests drive it without KVM; uart_create() wires
 * it to the port bus, an IRQ line and an output fd.
 */
#include "devices/uart.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/irq.h"
#include "core/log.h"

#define UART_FIFO 64

/* Registers */
#define R_RBR_THR 0
#define R_IER 1
#define R_IIR_FCR 2
#define R_LCR 3
#define R_MCR 4
#define R_LSR 5
#define R_MSR 6
#define R_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08

#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0

#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

struct uart {
	pthread_mutex_t lock;
	const struct uart_ops *ops;
	void *opaque;
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thri_pending; /* THR empty interrupt latched */
	uint8_t rx[UART_FIFO];
	unsigned rx_head, rx_count;
	int irq_level;
	/* Wiring for a real VM. */
	struct vm *vm;
	int out_fd;
};

static unsigned uart_iir(struct uart *u)
{
	unsigned fifo = (u->fcr & 1) ? IIR_FIFO : 0;

	if ((u->ier & IER_RDI) && u->rx_count)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->thri_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

static void uart_update_irq(struct uart *u)
{
	int level = (uart_iir(u) & IIR_NONE) ? 0 : 1;

	/* OUT2 gates the interrupt line on PC-compatible UARTs. */
	if (!(u->mcr & 0x08))
		level = 0;
	if (level != u->irq_level) {
		u->irq_level = level;
		u->ops->set_irq(u->opaque, level);
	}
}

uint8_t uart_reg_read(struct uart *u, unsigned reg)
{
	uint8_t v = 0;
	bool drained = false;

	pthread_mutex_lock(&u->lock);
	switch (reg & 7) {
	case R_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			v = u->dll;
			break;
		}
		if (u->rx_count) {
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % UART_FIFO;
			u->rx_count--;
			drained = true;
		}
		break;
	case R_IER:
		v = (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
		break;
	case R_IIR_FCR:
		v = (uint8_t)uart_iir(u);
		/* Reading IIR while it reports THRE clears that source. */
		if ((v & 0x0f) == IIR_THRI)
			u->thri_pending = false;
		break;
	case R_LCR:
		v = u->lcr;
		break;
	case R_MCR:
		v = u->mcr;
		break;
	case R_LSR:
		v = (uint8_t)(LSR_THRE | LSR_TEMT | (u->rx_count ? LSR_DR : 0));
		break;
	case R_MSR:
		if (u->mcr & MCR_LOOP) /* loopback: outputs reflect onto inputs */
			v = (uint8_t)(((u->mcr & 0x0c) << 4) | ((u->mcr & 0x01) << 5) |
				      ((u->mcr & 0x02) << 3));
		else
			v = 0xb0; /* DCD, DSR, CTS */
		break;
	case R_SCR:
		v = u->scr;
		break;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	if (drained && u->ops->input_drained)
		u->ops->input_drained(u->opaque);
	return v;
}

void uart_reg_write(struct uart *u, unsigned reg, uint8_t val)
{
	pthread_mutex_lock(&u->lock);
	switch (reg & 7) {
	case R_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->dll = val;
			break;
		}
		if (u->mcr & MCR_LOOP) {
			if (u->rx_count < UART_FIFO) {
				u->rx[(u->rx_head + u->rx_count) % UART_FIFO] = val;
				u->rx_count++;
			}
		} else {
			u->ops->output(u->opaque, val);
		}
		/* The byte left at once: THR is empty again. */
		u->thri_pending = true;
		break;
	case R_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = val;
			break;
		}
		/* Enabling THRI while THR is empty raises it at once. */
		if (!(u->ier & IER_THRI) && (val & IER_THRI))
			u->thri_pending = true;
		u->ier = val & 0x0f;
		break;
	case R_IIR_FCR:
		u->fcr = val & 0xc9;
		if (val & 0x02) { /* clear RX FIFO */
			u->rx_count = 0;
			u->rx_head = 0;
		}
		break;
	case R_LCR:
		u->lcr = val;
		break;
	case R_MCR:
		u->mcr = val & 0x1f;
		break;
	case R_LSR:
	case R_MSR:
		break; /* read-only */
	case R_SCR:
		u->scr = val;
		break;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

size_t uart_push_input(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	while (n < len && u->rx_count < UART_FIFO) {
		u->rx[(u->rx_head + u->rx_count) % UART_FIFO] = buf[n++];
		u->rx_count++;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

size_t uart_input_room(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	size_t room = UART_FIFO - u->rx_count;
	pthread_mutex_unlock(&u->lock);
	return room;
}

struct uart *uart_new(const struct uart_ops *ops, void *opaque)
{
	struct uart *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	pthread_mutex_init(&u->lock, NULL);
	u->ops = ops;
	u->opaque = opaque;
	u->out_fd = -1;
	u->lsr = LSR_THRE | LSR_TEMT;
	return u;
}

void uart_free(struct uart *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/* --- wiring to a VM --- */

static void uart_vm_set_irq(void *opaque, int level)
{
	struct uart *u = opaque;
	irq_line(u->vm->vm_fd, UART_COM1_IRQ, level);
}

static void uart_vm_output(void *opaque, uint8_t byte)
{
	struct uart *u = opaque;
	/* The console may be a pipe that is gone; the guest must not stall. */
	while (write(u->out_fd, &byte, 1) < 0 && errno == EINTR)
		;
}

static void uart_vm_drained(void *opaque)
{
	struct uart *u = opaque;
	uint64_t one = 1;
	/* Wake the main loop: it may hold console input waiting for room. */
	if (write(u->vm->wake_fd, &one, sizeof(one)) < 0)
		pr_debug("uart: wake: %d", errno);
}

static const struct uart_ops uart_vm_ops = {
	.set_irq = uart_vm_set_irq,
	.output = uart_vm_output,
	.input_drained = uart_vm_drained,
};

static void uart_pio(void *opaque, uint64_t off, uint8_t *data, uint32_t size, bool is_write)
{
	struct uart *u = opaque;

	if (size != 1) { /* byte registers only */
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (is_write)
		uart_reg_write(u, (unsigned)off, data[0]);
	else
		data[0] = uart_reg_read(u, (unsigned)off);
}

struct uart *uart_create(struct vm *vm, int out_fd)
{
	struct uart *u = uart_new(&uart_vm_ops, NULL);

	if (!u)
		return NULL;
	u->opaque = u;
	u->vm = vm;
	u->out_fd = out_fd;
	if (io_bus_register(&vm->pio, UART_COM1_BASE, 8, uart_pio, u, "uart-com1")) {
		uart_free(u);
		return NULL;
	}
	return u;
}

void uart_destroy(struct uart *u)
{
	uart_free(u);
}

/* --- save/load --- */

void uart_save(struct uart *u, struct enc *e)
{
	pthread_mutex_lock(&u->lock);
	const uint8_t regs[] = { u->ier, u->lcr, u->mcr, u->scr, u->dll, u->dlm, u->fcr,
				 u->thri_pending };
	enc_bytes(e, regs, sizeof(regs));
	enc_u8(e, (uint8_t)u->rx_count);
	for (unsigned i = 0; i < u->rx_count; i++)
		enc_u8(e, u->rx[(u->rx_head + i) % UART_FIFO]);
	pthread_mutex_unlock(&u->lock);
}

int uart_load(struct uart *u, struct dec *d)
{
	uint8_t regs[8], rx[UART_FIFO];

	dec_bytes(d, regs, sizeof(regs));
	unsigned n = dec_u8(d);
	if (n > UART_FIFO)
		return -EINVAL;
	dec_bytes(d, rx, n);
	if (d->err)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	u->ier = regs[0] & 0x0f;
	u->lcr = regs[1];
	u->mcr = regs[2] & 0x1f;
	u->scr = regs[3];
	u->dll = regs[4];
	u->dlm = regs[5];
	u->fcr = regs[6] & 0xc9;
	u->thri_pending = regs[7] != 0;
	memcpy(u->rx, rx, n);
	u->rx_head = 0;
	u->rx_count = n;
	u->irq_level = -1; /* force the line to be driven to its current level */
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}
