#include "backend/console.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int console_open(struct console *c, int in_fd, bool want_raw)
{
	memset(c, 0, sizeof(*c));
	c->in_fd = in_fd;
	if (want_raw && isatty(in_fd) && tcgetattr(in_fd, &c->saved) == 0) {
		struct termios t = c->saved;
		cfmakeraw(&t);
		t.c_oflag |= OPOST | ONLCR; /* keep our own log lines readable */
		if (tcsetattr(in_fd, TCSANOW, &t) == 0) {
			c->saved_valid = true;
			c->raw = true;
		}
	}
	return 0;
}

void console_close(struct console *c)
{
	if (c->saved_valid) {
		tcsetattr(c->in_fd, TCSANOW, &c->saved);
		c->saved_valid = false;
	}
}

enum console_action console_filter(struct console *c, const uint8_t *in, size_t n,
				   uint8_t *out, size_t *out_n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t b = in[i];

		if (!c->raw) {
			out[k++] = b;
			continue;
		}
		if (c->escape) {
			c->escape = false;
			if (b == 'x' || b == 'X') {
				*out_n = k;
				return CONSOLE_QUIT;
			}
			if (b == CONSOLE_ESCAPE)
				out[k++] = b;
			else if (b == 'h' || b == '?')
				fprintf(stderr, "\r\nC-a x  quit pocketvm\r\nC-a C-a  send C-a\r\n"
						"C-a h  this help\r\n");
			continue;
		}
		if (b == CONSOLE_ESCAPE) {
			c->escape = true;
			continue;
		}
		out[k++] = b;
	}
	*out_n = k;
	return CONSOLE_NONE;
}
