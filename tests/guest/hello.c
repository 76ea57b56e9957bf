/* The smallest test: banner at CPL 0, then a line from CPL 3. */
#include "rt.h"

void kernel_setup(void)
{
	printf_serial("HELLO-FROM-TEST-GUEST cpl=%d\n", (long)cpl());
}

void user_main(void)
{
	printf_serial("cpl=%d\n", (long)cpl());
	if (cpl() != 3)
		test_fail("hello", "not in user mode");
	test_pass("hello");
}
