#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int log_level = 1;

void log_msg(int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* "\r\n" keeps lines readable while the terminal is in raw mode. */
	fprintf(stderr, "pocketvm: %s\r\n", buf);
}
