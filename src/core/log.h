/*
 * Logging: one line per message on stderr, prefixed "pocketvm: ".
 * Log lines name the subsystem and the function; pr_once() is for messages a
 * guest could trigger repeatedly.
 */
#ifndef POCKETVM_LOG_H
#define POCKETVM_LOG_H

#include <stdbool.h>

extern int log_level; /* 0 error, 1 warn, 2 info, 3 debug */

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_err(...) log_msg(0, __VA_ARGS__)
#define pr_warn(...) log_msg(1, __VA_ARGS__)
#define pr_info(...) log_msg(2, __VA_ARGS__)
#define pr_debug(...) log_msg(3, __VA_ARGS__)

/* Log at most once per call site (guest-triggerable conditions). */
#define pr_warn_once(...)                                                      \
	do {                                                                   \
		static bool once_;                                             \
		if (!__atomic_exchange_n(&once_, true, __ATOMIC_RELAXED))      \
			pr_warn(__VA_ARGS__);                                  \
	} while (0)

#endif
