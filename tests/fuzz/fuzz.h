/*
 * What the harnesses share: MUST(c) checks an invariant on the code under
 * test and traps (a libFuzzer crash with the input saved) when it fails.
 */
#ifndef POCKETVM_TESTS_FUZZ_H
#define POCKETVM_TESTS_FUZZ_H

#include <stdio.h>

#define MUST(c)                                                                                  \
	do {                                                                                     \
		if (!(c)) {                                                                      \
			fprintf(stderr, "%s:%d: MUST(%s) failed\n", __FILE__, __LINE__, #c);      \
			__builtin_trap();                                                        \
		}                                                                                \
	} while (0)

#endif
