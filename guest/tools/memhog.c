/*
 * memhog: hold MIB MiB of touched anonymous memory until a line arrives on
 * stdin (or stdin closes), then free it and exit. The balloon tests use it
 * to make a Linux guest allocate and free a large block, so that free page
 * reporting has something to return to the host.
 *
 *   memhog MIB      prints "HELD MIB" once every page is written, then
 *                   "FREED MIB" after the line, just before exiting
 *
 * Freestanding (raw system calls, no libc): a few KiB in the initramfs
 * instead of a static glibc binary, which the interpreted guest kernel
 * would spend seconds unpacking.
 */
#define SYS_read 0
#define SYS_write 1
#define SYS_mmap 9
#define SYS_munmap 11
#define SYS_exit_group 231
#define PROT_RW 3
#define MAP_PRIVATE_ANON 0x22

static long sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

static void out(const char *s)
{
	long n = 0;
	while (s[n])
		n++;
	sys3(SYS_write, 1, (long)s, n);
}

static void out_num(const char *what, unsigned long v)
{
	char b[32];
	int i = sizeof(b) - 1;
	b[i] = 0;
	b[--i] = '\n';
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v && i > 0);
	out(what);
	out(b + i);
}

static __attribute__((noreturn)) void quit(int code)
{
	sys3(SYS_exit_group, code, 0, 0);
	__builtin_unreachable();
}

static int hog(int argc, char **argv)
{
	unsigned long mib = 0;
	if (argc != 2) {
		out("usage: memhog MIB\n");
		return 2;
	}
	for (const char *p = argv[1]; *p; p++) {
		if (*p < '0' || *p > '9' || mib > (1UL << 20)) {
			out("memhog: MIB must be a number of MiB\n");
			return 2;
		}
		mib = mib * 10 + (unsigned long)(*p - '0');
	}
	unsigned long len = mib << 20;
	long a = sys6(SYS_mmap, 0, (long)len, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
	if (a < 0 && a > -4096) {
		out("memhog: mmap failed\n");
		return 1;
	}
	volatile unsigned char *m = (volatile unsigned char *)a;
	for (unsigned long off = 0; off < len; off += 4096)
		m[off] = (unsigned char)(1 + (off >> 12));
	out_num("HELD ", mib);
	char c;
	while (sys3(SYS_read, 0, (long)&c, 1) == 1 && c != '\n')
		;
	sys3(SYS_munmap, a, (long)len, 0);
	out_num("FREED ", mib);
	return 0;
}

/* Entry: the stack holds argc, argv[], envp[] (x86-64 System V). */
__attribute__((used)) static void start_c(long *sp)
{
	quit(hog((int)sp[0], (char **)(sp + 1)));
}

__asm__(".global _start\n"
	"_start:\n"
	"  mov %rsp, %rdi\n"
	"  and $-16, %rsp\n"
	"  call start_c\n"
	"  hlt\n");
