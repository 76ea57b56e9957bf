/*
 * Control socket server (runs on the main loop) and the `ctl` client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/log.h"
#include "core/vm.h"

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
			"           pause, save the VM to DIR, then resume (or exit with --exit)\n");
		return argc < 3 ? 2 : 0;
	}
	const char *path = argv[1], *cmd = argv[2];
	char snapdir[API_MAX_PATH] = "";
	bool snap_exit = false;
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
