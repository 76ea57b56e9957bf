/*
 * bench/irqchip: what the interrupt-controller choice costs at VM creation.
 * For each variant, N times: KVM_CREATE_VM, 256 MiB memory slot, irqchip,
 * one vCPU, and the time of each step (medians, microseconds).
 *   kernel/slot-first   memory slot, then KVM_CREATE_IRQCHIP (pocketvm)
 *   kernel/chip-first   KVM_CREATE_IRQCHIP, then the memory slot
 *   split               KVM_CAP_SPLIT_IRQCHIP (LAPIC in kernel, IOAPIC/PIC in
 *                       userspace), then the memory slot
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RUNS 15
#define MEM (256UL << 20)

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[n / 2];
}

enum variant { SLOT_FIRST, CHIP_FIRST, SPLIT };

static int run(int kvm, void *mem, enum variant var, double *t_slot, double *t_chip, double *t_total)
{
	double t0 = now_us();
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return -1;
	struct kvm_userspace_memory_region r = { .slot = 0, .memory_size = MEM,
						 .userspace_addr = (unsigned long)mem };
	double a, b;
	if (var == SLOT_FIRST) {
		a = now_us();
		ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r);
		b = now_us();
		*t_slot = b - a;
		ioctl(vm, KVM_CREATE_IRQCHIP, 0);
		*t_chip = now_us() - b;
	} else {
		a = now_us();
		if (var == CHIP_FIRST) {
			ioctl(vm, KVM_CREATE_IRQCHIP, 0);
		} else {
			struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
			if (ioctl(vm, KVM_ENABLE_CAP, &cap) < 0) {
				close(vm);
				return -1;
			}
		}
		b = now_us();
		*t_chip = b - a;
		ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r);
		*t_slot = now_us() - b;
	}
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	*t_total = now_us() - t0;
	close(vcpu);
	close(vm);
	return 0;
}

int main(void)
{
	static const char *names[] = { "kernel, slot first", "kernel, chip first", "split" };
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("/dev/kvm");
		return 1;
	}
	void *mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("%-20s %12s %12s %12s   (medians of %d, microseconds)\n", "irqchip", "memslot",
	       "irqchip", "VM+vCPU", RUNS);
	for (int v = 0; v < 3; v++) {
		double s[RUNS], c[RUNS], t[RUNS];
		int ok = 1;
		for (int i = 0; i < RUNS && ok; i++)
			ok = run(kvm, mem, (enum variant)v, &s[i], &c[i], &t[i]) == 0;
		if (!ok) {
			printf("%-20s unsupported\n", names[v]);
			continue;
		}
		printf("%-20s %12.1f %12.1f %12.1f\n", names[v], median(s, RUNS), median(c, RUNS),
		       median(t, RUNS));
	}
	return 0;
}
