/*
 * A tiny unit-test harness. Each test file defines TEST(name) functions and
 * a main() that calls RUN(name) for each; CHECK() records a failure with
 * file and line and continues. The process exits non-zero on any failure and
 * prints "N passed, N failed" for the suite runner.
 */
#ifndef POCKETVM_TEST_HARNESS_H
#define POCKETVM_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

static int th_failed_checks;
static int th_passed, th_failed;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, \
				__LINE__, #cond);                              \
			th_failed_checks++;                                    \
		}                                                              \
	} while (0)

#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		if (a_ != b_) {                                                \
			fprintf(stderr, "  %s:%d: %s == %s failed (%lld vs %lld)\n", \
				__FILE__, __LINE__, #a, #b, a_, b_);           \
			th_failed_checks++;                                    \
		}                                                              \
	} while (0)

#define RUN(name)                                                              \
	do {                                                                   \
		int before_ = th_failed_checks;                                \
		name();                                                        \
		if (th_failed_checks == before_) {                             \
			th_passed++;                                           \
			printf("ok   %s\n", #name);                            \
		} else {                                                       \
			th_failed++;                                           \
			printf("FAIL %s\n", #name);                            \
		}                                                              \
	} while (0)

#define TEST_MAIN_END()                                                        \
	do {                                                                   \
		printf("%d passed, %d failed\n", th_passed, th_failed);        \
		return th_failed ? 1 : 0;                                      \
	} while (0)

#endif
