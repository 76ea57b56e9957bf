/*
 * The guest console on the host terminal: raw mode when stdin is a terminal,
 * with QEMU's escape sequence (Ctrl-A x quits, Ctrl-A h helps, Ctrl-A Ctrl-A
 * sends Ctrl-A); plain pipes otherwise.
 */
#ifndef POCKETVM_CONSOLE_H
#define POCKETVM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */

struct console {
	int in_fd;
	bool raw;	   /* terminal in raw mode, escape sequence active */
	bool saved_valid;
	struct termios saved;
	bool escape;	   /* previous byte was the escape */
	bool eof;	   /* input closed */
	uint8_t pending[256]; /* input not yet accepted by the UART */
	size_t pend_off, pend_len;
};

/* console_open - use @in_fd; raw mode (and escapes) only if it is a tty. */
int console_open(struct console *c, int in_fd, bool want_raw);

/* Restore the terminal. Safe to call more than once. */
void console_close(struct console *c);

enum console_action { CONSOLE_NONE, CONSOLE_QUIT };

/*
 * console_filter - apply the escape sequence to @in (@n bytes), appending
 * guest-bound bytes to @out (room for @n). Returns the action requested;
 * *out_n gets the byte count. Pure: unit-tested.
 */
enum console_action console_filter(struct console *c, const uint8_t *in, size_t n,
				   uint8_t *out, size_t *out_n);

#endif
