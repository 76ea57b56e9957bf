/*
 * Control socket server (runs on the main loop) and the `ctl` client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/vm.h"
#include "virtio/balloon.h"

/* Append @s to @out as JSON string contents. */
static void json_escape(char *out, size_t max, const char *s)
{
	size_t n = strlen(out);

	for (; *s && n + 7 < max; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += (size_t)snprintf(out + n, max - n, "\\u%04x", ch);
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n] = 0;
}

int api_server_open(struct api_server *s, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->listen_fd = -1;
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		s->client[i].fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		pr_err("api: socket path %s is too long (max %zu bytes)", path,
		       sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	/* Replace a stale socket, never another kind of file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			pr_err("api: %s exists and is not a socket", path);
			return -EEXIST;
		}
		unlink(path);
	}
	strcpy(sa.sun_path, path);
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->listen_fd < 0)
		return -errno;
	/* Created 0600 from the start: no window where others may connect. */
	mode_t old = umask(0177);
	int r = bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(s->listen_fd, 4) < 0) {
		r = -errno;
		pr_err("api: cannot listen on %s: %s", path, strerror(errno));
		close(s->listen_fd);
		s->listen_fd = -1;
		return r;
	}
	return 0;
}

void api_server_close(struct api_server *s)
{
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		if (s->client[i].fd >= 0)
			close(s->client[i].fd);
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink(s->path);
	}
	s->listen_fd = -1;
}

int api_server_pollfds(struct api_server *s, struct pollfd *pfd)
{
	int n = 0;

	if (s->listen_fd < 0)
		return 0;
	pfd[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		if (s->client[i].fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = s->client[i].fd, .events = POLLIN };
	return n;
}

static void api_reply(int fd, const char *json)
{
	size_t len = strlen(json), off = 0;
	while (off < len) {
		ssize_t w = send(fd, json + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the client went away */
		off += (size_t)w;
	}
}

static void api_error(int fd, const char *msg)
{
	char out[512] = "{\"ok\":false,\"error\":\"";
	json_escape(out, sizeof(out) - 4, msg);
	strcat(out, "\"}\n");
	api_reply(fd, out);
}

/* Resident set of this process in KiB (smaps_rollup "Rss:"), or -1. */
static long long api_rss_kib(void)
{
	char buf[4096];
	long long kib = -1;
	FILE *f = fopen("/proc/self/smaps_rollup", "re");

	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "Rss: %lld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Append to @out (NUL-terminated, @max bytes) like snprintf; truncates. */
__attribute__((format(printf, 3, 4)))
static void json_add(char *out, size_t max, const char *fmt, ...)
{
	size_t n = strlen(out);
	va_list ap;

	if (n + 1 >= max)
		return;
	va_start(ap, fmt);
	vsnprintf(out + n, max - n, fmt, ap);
	va_end(ap);
}

/*
 * The reply to "stats": one object, built here only, so fields are added in
 * one place. The balloon and guest objects appear when there is a balloon,
 * and the guest one once its driver has sent statistics.
 */
static void api_stats_json(struct vm *vm, char *out, size_t max)
{
	long long rss = api_rss_kib();

	snprintf(out, max, "{\"ok\":true,\"rss_kib\":%lld", rss);
	if (vm->balloon) {
		struct balloon_info bi;
		/* Ask for fresh numbers for next time; answer with what we have. */
		balloon_request_stats(vm->balloon);
		balloon_get_info(vm->balloon, &bi);
		json_add(out, max, ",\"balloon\":{\"target_mib\":%llu,\"actual_mib\":%llu,"
			 "\"inflated_mib\":%llu,\"reported_mib\":%llu,\"driver_ok\":%s}",
			 (unsigned long long)(bi.target_pages >> 8),
			 (unsigned long long)(bi.actual_pages >> 8),
			 (unsigned long long)(bi.inflated_pages >> 8),
			 (unsigned long long)(bi.reported_bytes >> 20),
			 bi.driver_ok ? "true" : "false");
		const struct balloon_guest_stats *st = &bi.stats;
		if (st->updated_ns) {
			static const struct { const char *name; int tag; } f[] = {
				{ "total", BALLOON_S_MEMTOT },	   { "free", BALLOON_S_MEMFREE },
				{ "available", BALLOON_S_AVAIL },  { "caches", BALLOON_S_CACHES },
				{ "major_faults", BALLOON_S_MAJFLT }, { "swap_in", BALLOON_S_SWAP_IN },
				{ "swap_out", BALLOON_S_SWAP_OUT },
			};
			uint64_t ns = mono_ns();
			json_add(out, max, ",\"guest\":{");
			for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
				if (st->have >> f[i].tag & 1)
					json_add(out, max, "\"%s\":%llu,", f[i].name,
						 (unsigned long long)st->val[f[i].tag]);
			json_add(out, max, "\"age_ms\":%llu}",
				 (unsigned long long)(ns > st->updated_ns ? (ns - st->updated_ns) / 1000000 : 0));
		}
	}
	bctl_json(vm->bctl, out, max - 3);
	json_add(out, max, "}\n");
}

/* Execute one request. Returns true if the VM is to quit after replying. */
static void api_execute(int fd, const struct api_request *req, struct vm *vm)
{
	char out[512];

	switch (req->cmd) {
	case API_CMD_STATUS:
		snprintf(out, sizeof(out),
			 "{\"ok\":true,\"state\":\"%s\",\"vcpus\":%d,\"mem_mib\":%llu}\n",
			 vm_is_paused(vm) ? "paused" : "running", vm->nr_vcpus,
			 (unsigned long long)(vm->mem.ram_size >> 20));
		api_reply(fd, out);
		return;
	case API_CMD_PAUSE:
		vm_pause(vm);
		api_reply(fd, "{\"ok\":true,\"state\":\"paused\"}\n");
		return;
	case API_CMD_RESUME:
		vm_resume(vm);
		api_reply(fd, "{\"ok\":true,\"state\":\"running\"}\n");
		return;
	case API_CMD_QUIT:
		if (vm->cfg.state_dir) {
			/* The app lifecycle: save on the way out, next launch restores. */
			char err[512];
			if (vm_snapshot(vm, vm->cfg.state_dir, true, err, sizeof(err))) {
				api_error(fd, err);
				return;
			}
			api_reply(fd, "{\"ok\":true,\"saved\":true}\n");
			return;
		}
		api_reply(fd, "{\"ok\":true}\n");
		vm_request_exit(vm, VM_EXIT_QUIT);
		return;
	case API_CMD_SNAPSHOT: {
		char err[512];
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (vm_snapshot(vm, req->path, req->exit, err, sizeof(err))) {
			api_error(fd, err);
			return;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		char out[API_MAX_PATH + 128] = "{\"ok\":true,\"path\":\"";
		json_escape(out, sizeof(out) - 64, req->path);
		snprintf(out + strlen(out), 64, "\",\"ms\":%.1f}\n", ms);
		api_reply(fd, out);
		return;
	}
	case API_CMD_BALLOON: {
		struct balloon_info bi;
		if (!vm->balloon) {
			api_error(fd, "this VM has no balloon (start it with --balloon)");
			return;
		}
		if (req->balloon_auto)
			bctl_set_auto(vm->bctl);
		else if (vm->bctl)
			bctl_set_manual(vm->bctl, req->mib << 20);
		else
			balloon_set_target(vm->balloon, req->mib << 8); /* MiB -> 4 KiB pages */
		balloon_get_info(vm->balloon, &bi);
		snprintf(out, sizeof(out), "{\"ok\":true,\"target_mib\":%llu,\"mode\":\"%s\"}\n",
			 (unsigned long long)(bi.target_pages >> 8),
			 req->balloon_auto ? "auto" : "manual");
		api_reply(fd, out);
		return;
	}
	case API_CMD_FOREGROUND:
	case API_CMD_BACKGROUND: {
		bool fg = req->cmd == API_CMD_FOREGROUND;
		if (!vm->bctl) {
			api_error(fd, "this VM has no balloon controller (start it with --balloon)");
			return;
		}
		bctl_set_foreground(vm->bctl, fg, "ctl");
		snprintf(out, sizeof(out), "{\"ok\":true,\"foreground\":%s}\n", fg ? "true" : "false");
		api_reply(fd, out);
		return;
	}
	case API_CMD_STATS: {
		char js[API_MAX_LINE];
		api_stats_json(vm, js, sizeof(js));
		api_reply(fd, js);
		return;
	}
	}
	api_error(fd, "unhandled command");
}

static void api_client_drop(struct api_client *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static void api_client_readable(struct api_client *c, struct vm *vm)
{
	ssize_t r = recv(c->fd, c->buf + c->len, API_MAX_LINE + 1 - c->len, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		api_client_drop(c);
		return;
	}
	c->len += (size_t)r;
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (!nl) {
			if (c->len > API_MAX_LINE) {
				api_error(c->fd, "request too long");
				api_client_drop(c);
			}
			return;
		}
		size_t line = (size_t)(nl - c->buf);
		struct api_request req;
		char err[128];
		if (api_parse_request(c->buf, line, &req, err, sizeof(err)) == 0)
			api_execute(c->fd, &req, vm);
		else
			api_error(c->fd, err);
		memmove(c->buf, nl + 1, c->len - line - 1);
		c->len -= line + 1;
	}
}

void api_server_handle(struct api_server *s, struct pollfd *pfd, int n, struct vm *vm)
{
	for (int i = 0; i < n; i++) {
		if (!pfd[i].revents)
			continue;
		if (pfd[i].fd == s->listen_fd) {
			int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (fd < 0)
				continue;
			int slot;
			for (slot = 0; slot < API_MAX_CLIENTS; slot++)
				if (s->client[slot].fd < 0)
					break;
			if (slot == API_MAX_CLIENTS) {
				api_error(fd, "too many clients");
				close(fd);
				continue;
			}
			s->client[slot].fd = fd;
			s->client[slot].len = 0;
			continue;
		}
		for (int k = 0; k < API_MAX_CLIENTS; k++)
			if (s->client[k].fd == pfd[i].fd)
				api_client_readable(&s->client[k], vm);
	}
}

/* --- client --- */

int api_client_main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fprintf(argc < 3 ? stderr : stdout,
			"usage: pocketvm ctl PATH COMMAND\n\n"
			"Send COMMAND to the VM whose control socket is PATH (--api) and print\n"
			"the JSON reply. Commands:\n"
			"  status   state, vCPUs and memory\n"
			"  pause    stop every vCPU (waits until all have stopped)\n"
			"  resume   continue after pause\n"
			"  quit     end the VM (exit status 0; with --state, save first)\n"
			"  snapshot DIR [--exit]\n"
			"           pause, save the VM to DIR, then resume (or exit with --exit)\n"
			"  balloon MIB\n"
			"           set the balloon target: the guest gives MIB MiB back to the\n"
			"           host (0 returns everything; needs run --balloon)\n"
			"  balloon auto\n"
			"           hand the balloon back to its policy (--balloon-policy)\n"
			"  foreground, background\n"
			"           the app is in front (the guest's memory has priority) or\n"
			"           behind (the host's has): the balloon policy follows\n"
			"  stats    the balloon, the guest's memory statistics, the policy's state\n"
			"           and pocketvm's RSS\n");
		return argc < 3 ? 2 : 0;
	}
	const char *path = argv[1], *cmd = argv[2];
	char snapdir[API_MAX_PATH] = "";
	bool snap_exit = false;
	long long balloon_mib = -1;
	if (!strcmp(cmd, "snapshot")) {
		if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "--exit"))) {
			fprintf(stderr, "usage: pocketvm ctl PATH snapshot DIR [--exit]\n");
			return 2;
		}
		snap_exit = argc == 5;
		char cwd[API_MAX_PATH / 2];
		if (argv[3][0] != '/' && !getcwd(cwd, sizeof(cwd))) {
			fprintf(stderr, "pocketvm ctl: cannot resolve %s\n", argv[3]);
			return 2;
		}
		if (snprintf(snapdir, sizeof(snapdir), "%s%s%s", argv[3][0] == '/' ? "" : cwd,
			     argv[3][0] == '/' ? "" : "/", argv[3]) >= (int)sizeof(snapdir)) {
			fprintf(stderr, "pocketvm ctl: snapshot path too long\n");
			return 2;
		}
	} else if (!strcmp(cmd, "balloon")) {
		char *end = NULL;
		unsigned long long v = 0;
		bool ok = argc == 4 && argv[3][0] >= '0' && argv[3][0] <= '9';
		if (ok) {
			errno = 0;
			v = strtoull(argv[3], &end, 10);
			ok = !*end && !errno && v <= API_MAX_MIB;
		}
		if (argc == 4 && !strcmp(argv[3], "auto")) {
			balloon_mib = -2; /* {"auto":true} */
		} else if (!ok) {
			fprintf(stderr, "usage: pocketvm ctl PATH balloon MIB|auto (MIB 0 to %llu)\n",
				(unsigned long long)API_MAX_MIB);
			return 2;
		} else {
			balloon_mib = (long long)v;
		}
	} else if (argc > 3) {
		fprintf(stderr, "pocketvm ctl: %s takes no arguments\n", cmd);
		return 2;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "pocketvm ctl: socket path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "pocketvm ctl: cannot connect to %s: %s\n", path, strerror(errno));
		return 1;
	}
	char req[2 * API_MAX_PATH + 128] = "{\"cmd\":\"";
	json_escape(req, 256, cmd);
	if (snapdir[0]) {
		strcat(req, "\",\"path\":\"");
		json_escape(req, sizeof(req) - 32, snapdir);
		strcat(req, snap_exit ? "\",\"exit\":true}\n" : "\"}\n");
	} else if (balloon_mib >= 0) {
		snprintf(req + strlen(req), 64, "\",\"mib\":%lld}\n", balloon_mib);
	} else if (balloon_mib == -2) {
		strcat(req, "\",\"auto\":true}\n");
	} else {
		strcat(req, "\"}\n");
	}
	api_reply(fd, req);
	char buf[API_MAX_LINE + 1];
	size_t len = 0;
	while (len < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(buf, '\n', len))
			break;
	}
	close(fd);
	buf[len] = 0;
	if (!len) {
		fprintf(stderr, "pocketvm ctl: no reply from %s\n", path);
		return 1;
	}
	fputs(buf, stdout);
	return strstr(buf, "\"ok\":true") ? 0 : 1;
}
