/*
 * 16550A UART on COM1 (0x3f8, IRQ 4): the guest console. Output goes to a
 * host fd as it is written; input is pushed by the console backend and
 * raises the receive interrupt.
 */
#ifndef POCKETVM_UART_H
#define POCKETVM_UART_H

#include <stddef.h>
#include <stdint.h>

#include "core/vm.h"
#include "snapshot/codec.h"

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ 4

struct uart;

/* Create COM1 on @vm's port bus, writing guest output to @out_fd. */
struct uart *uart_create(struct vm *vm, int out_fd);
void uart_destroy(struct uart *u);

/*
 * uart_push_input - queue up to @len bytes of input for the guest.
 * Returns how many were accepted (the receive FIFO may be full).
 */
size_t uart_push_input(struct uart *u, const uint8_t *buf, size_t len);

/* uart_input_room - free bytes in the receive FIFO. */
size_t uart_input_room(struct uart *u);

/*
 * Register file semantics, exposed for unit tests: one access to register
 * @reg (0-7). Effects (IRQ level, output bytes) go through the callbacks.
 */
struct uart_ops {
	void (*set_irq)(void *opaque, int level);
	void (*output)(void *opaque, uint8_t byte);
	void (*input_drained)(void *opaque); /* room appeared in the RX FIFO */
};
struct uart *uart_new(const struct uart_ops *ops, void *opaque);
void uart_free(struct uart *u);
uint8_t uart_reg_read(struct uart *u, unsigned reg);
void uart_reg_write(struct uart *u, unsigned reg, uint8_t val);

/* Snapshot: registers and the receive FIFO. load validates, then installs. */
void uart_save(struct uart *u, struct enc *e);
int uart_load(struct uart *u, struct dec *d);

#endif
