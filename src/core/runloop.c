/*
 * The main thread's event loop while the VM runs: console input, the
 * control socket, and the wake eventfd that tells it the VM is stopping or
 * the UART has room for more input. vCPUs and device I/O run on their own
 * threads; nothing here is in a guest's hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "backend/console.h"
#include "core/log.h"
#include "core/vcpu.h"
#include "core/vm.h"
#include "devices/uart.h"

/* Move pending console bytes into the UART as room allows. */
static void runloop_feed_uart(struct vm *vm, struct console *con)
{
	if (con->pend_off < con->pend_len) {
		size_t n = uart_push_input(vm->uart, con->pending + con->pend_off,
					   con->pend_len - con->pend_off);
		con->pend_off += n;
	}
	if (con->pend_off == con->pend_len)
		con->pend_off = con->pend_len = 0;
}

static void runloop_console_input(struct vm *vm, struct console *con)
{
	uint8_t in[sizeof(con->pending)];
	ssize_t r = read(con->in_fd, in, sizeof(in));

	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		con->eof = true; /* input closed: keep running, stop reading */
		return;
	}
	size_t n;
	if (console_filter(con, in, (size_t)r, con->pending, &n) == CONSOLE_QUIT) {
		pr_info("console: quit requested");
		vm_request_exit(vm, VM_EXIT_QUIT);
	}
	con->pend_off = 0;
	con->pend_len = n;
	runloop_feed_uart(vm, con);
}

void vm_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

/* SIGTERM/SIGINT/SIGHUP: with --state save and exit (the app is closing), else quit. */
static void runloop_signal(struct vm *vm, int sig_fd)
{
	struct signalfd_siginfo si;
	char err[512];

	if (read(sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	pr_info("signal %u: stopping", si.ssi_signo);
	if (!vm->cfg.state_dir) {
		vm_request_exit(vm, VM_EXIT_QUIT);
		return;
	}
	if (vm_snapshot(vm, vm->cfg.state_dir, true, err, sizeof(err))) {
		pr_err("cannot save to %s: %s; stopping without a snapshot", vm->cfg.state_dir, err);
		vm_request_exit(vm, VM_EXIT_FAILURE);
	}
}

static bool runloop_vcpus_gone(struct vm *vm)
{
	return vm->running_vcpus == 0;
}

int vm_run(struct vm *vm, struct api_server *apisrv)
{
	struct api_server none = { .listen_fd = -1 };
	struct api_server *api = apisrv ? apisrv : &none;
	struct console con;
	int r;

	console_open(&con, STDIN_FILENO, vm->cfg.console_raw);
	if (con.raw)
		fprintf(stderr, "pocketvm: console: C-a x to quit, C-a h for help\r\n");

	/* SIGTERM/SIGINT/SIGHUP were blocked in every thread (vm_block_signals);
	 * they arrive here as events. */
	sigset_t term;
	vm_stop_signals(&term);
	int sig_fd = signalfd(-1, &term, SFD_CLOEXEC | SFD_NONBLOCK);

	vcpu_signal_init();
	pthread_mutex_lock(&vm->lock);
	vm->running_vcpus = vm->nr_vcpus;
	pthread_mutex_unlock(&vm->lock);
	for (int i = 0; i < vm->nr_vcpus; i++) {
		r = vcpu_start(&vm->vcpu[i]);
		if (r) {
			pr_err("cannot start vcpu%d: %s", i, strerror(-r));
			pthread_mutex_lock(&vm->lock);
			vm->running_vcpus -= vm->nr_vcpus - i;
			pthread_mutex_unlock(&vm->lock);
			vm_request_exit(vm, VM_EXIT_FAILURE);
			break;
		}
	}

	/* The balloon's controller runs on this loop: signals, policy, metrics. */
	if (vm->balloon) {
		vm->bctl = bctl_create(vm, &vm->cfg.bctl);
		if (!vm->bctl)
			pr_warn("balloon: no controller (out of memory): the balloon stays as it is");
	}

	for (;;) {
		struct pollfd pfd[3 + 1 + API_MAX_CLIENTS + BCTL_MAX_FDS];
		int n = 0;

		pthread_mutex_lock(&vm->lock);
		bool stop = vm->exit != VM_EXIT_NONE;
		pthread_mutex_unlock(&vm->lock);
		if (stop)
			break;
		pfd[n++] = (struct pollfd){ .fd = vm->wake_fd, .events = POLLIN };
		int sig_idx = n;
		pfd[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		/* Read more input only when the previous batch is in the UART. */
		bool want_input = !con.eof && con.pend_len == 0;
		int con_idx = -1;
		if (want_input) {
			con_idx = n;
			pfd[n++] = (struct pollfd){ .fd = con.in_fd, .events = POLLIN };
		}
		int api_first = n;
		n += api_server_pollfds(api, pfd + n);
		int bctl_first = n;
		n += bctl_pollfds(vm->bctl, pfd + n);

		r = poll(pfd, (nfds_t)n, -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			pr_err("main loop: poll: %s", strerror(errno));
			vm_request_exit(vm, VM_EXIT_FAILURE);
			break;
		}
		if (pfd[0].revents) {
			uint64_t cnt;
			if (read(vm->wake_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
				pr_debug("main loop: wake read: %s", strerror(errno));
			runloop_feed_uart(vm, &con);
		}
		if (pfd[sig_idx].revents)
			runloop_signal(vm, sig_fd);
		if (con_idx >= 0 && pfd[con_idx].revents)
			runloop_console_input(vm, &con);
		if (bctl_first > api_first)
			api_server_handle(api, pfd + api_first, bctl_first - api_first, vm);
		if (n > bctl_first)
			bctl_handle(vm->bctl, pfd + bctl_first, n - bctl_first);
	}
	bctl_destroy(vm->bctl);
	vm->bctl = NULL;

	/* Stop: every vCPU was kicked by vm_request_exit(); wait until all have
	 * left, kicking again if one missed it, then join them. */
	pthread_mutex_lock(&vm->lock);
	vm_wait_kicking(vm, runloop_vcpus_gone);
	pthread_mutex_unlock(&vm->lock);
	for (int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpu[i].started)
			pthread_join(vm->vcpu[i].thread, NULL);
	console_close(&con);
	if (sig_fd >= 0)
		close(sig_fd);
	return vm_exit_status(vm->exit);
}
