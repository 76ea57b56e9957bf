/* The 16550A register model, with recorded effects. */
#include <string.h>

#include "devices/uart.h"
#include "harness.h"

struct rec {
	int irq;
	int irq_changes;
	char out[64];
	int nout;
};

static void rec_irq(void *o, int level)
{
	struct rec *r = o;
	r->irq = level;
	r->irq_changes++;
}

static void rec_out(void *o, uint8_t b)
{
	struct rec *r = o;
	if (r->nout < 63)
		r->out[r->nout++] = (char)b;
}

static const struct uart_ops rec_ops = { .set_irq = rec_irq, .output = rec_out };

TEST(output_bytes)
{
	struct rec r = { 0 };
	struct uart *u = uart_new(&rec_ops, &r);
	uart_reg_write(u, 0, 'h');
	uart_reg_write(u, 0, 'i');
	CHECK_EQ(r.nout, 2);
	CHECK(memcmp(r.out, "hi", 2) == 0);
	CHECK(uart_reg_read(u, 5) & 0x20); /* THRE */
	uart_free(u);
}

TEST(divisor_latch)
{
	struct rec r = { 0 };
	struct uart *u = uart_new(&rec_ops, &r);
	uart_reg_write(u, 3, 0x80); /* DLAB */
	uart_reg_write(u, 0, 0x01);
	uart_reg_write(u, 1, 0x00);
	CHECK_EQ(uart_reg_read(u, 0), 0x01);
	CHECK_EQ(r.nout, 0); /* DLL write is not output */
	uart_reg_write(u, 3, 0x03);
	CHECK_EQ(uart_reg_read(u, 3), 0x03);
	uart_free(u);
}

TEST(rx_interrupt)
{
	struct rec r = { 0 };
	struct uart *u = uart_new(&rec_ops, &r);
	uart_reg_write(u, 4, 0x08); /* OUT2 */
	uart_reg_write(u, 1, 0x01); /* RDI */
	CHECK_EQ(r.irq, 0);
	CHECK_EQ(uart_push_input(u, (const uint8_t *)"ab", 2), 2);
	CHECK_EQ(r.irq, 1);
	CHECK_EQ(uart_reg_read(u, 2) & 0x0f, 0x04);
	CHECK(uart_reg_read(u, 5) & 1);
	CHECK_EQ(uart_reg_read(u, 0), 'a');
	CHECK_EQ(uart_reg_read(u, 0), 'b');
	CHECK_EQ(r.irq, 0);
	CHECK_EQ(uart_reg_read(u, 5) & 1, 0);
	uart_free(u);
}

TEST(thre_interrupt)
{
	struct rec r = { 0 };
	struct uart *u = uart_new(&rec_ops, &r);
	uart_reg_write(u, 4, 0x08);
	uart_reg_write(u, 1, 0x02); /* THRI: THR is empty, so it fires */
	CHECK_EQ(r.irq, 1);
	CHECK_EQ(uart_reg_read(u, 2) & 0x0f, 0x02); /* reading IIR clears it */
	CHECK_EQ(r.irq, 0);
	uart_reg_write(u, 0, 'x');
	CHECK_EQ(r.irq, 1);
	uart_reg_write(u, 1, 0x00);
	CHECK_EQ(r.irq, 0);
	uart_free(u);
}

TEST(out2_gates_irq)
{
	struct rec r = { 0 };
	struct uart *u = uart_new(&rec_ops, &r);
	uart_reg_write(u, 1, 0x01);
	uart_push_input(u, (const uint8_t *)"z", 1);
	CHECK_EQ(r.irq, 0);
	uart_reg_write(u, 4, 0x08);
	CHECK_EQ(r.irq, 1);
	uart_free(u);
}

TEST(fifo_full_and_loopback)
{
	struct rec r = { 0 };
	struct uart *u = uart_new(&rec_ops, &r);
	uint8_t buf[100];
	memset(buf, 'q', sizeof(buf));
	CHECK_EQ(uart_push_input(u, buf, sizeof(buf)), 64);
	CHECK_EQ(uart_input_room(u), 0);
	uart_reg_write(u, 2, 0x03); /* enable + clear RX FIFO */
	CHECK_EQ(uart_input_room(u), 64);
	CHECK_EQ(uart_reg_read(u, 2) & 0xc0, 0xc0); /* 16550A FIFO bits */
	uart_reg_write(u, 4, 0x10);		    /* loopback */
	uart_reg_write(u, 0, 'L');
	CHECK_EQ(r.nout, 0);
	CHECK_EQ(uart_reg_read(u, 0), 'L');
	uart_reg_write(u, 7, 0x5a);
	CHECK_EQ(uart_reg_read(u, 7), 0x5a);
	uart_free(u);
}

int main(void)
{
	RUN(output_bytes);
	RUN(divisor_latch);
	RUN(rx_interrupt);
	RUN(thre_interrupt);
	RUN(out2_gates_irq);
	RUN(fifo_full_and_loopback);
	TEST_MAIN_END();
}
