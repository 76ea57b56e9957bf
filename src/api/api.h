/*
 * Control API: line-delimited JSON over a Unix stream socket (mode 0600).
 * Requests are objects {"cmd": NAME} parsed into a closed set of commands;
 * a line longer than API_MAX_LINE is refused and the connection closed.
 * See docs/control-api.md.
 */
#ifndef POCKETVM_API_H
#define POCKETVM_API_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_MAX_LINE 4096
#define API_MAX_CLIENTS 8

enum api_cmd {
	API_CMD_STATUS,
	API_CMD_PAUSE,
	API_CMD_RESUME,
	API_CMD_QUIT,
	API_CMD_SNAPSHOT, /* "path": directory, "exit": true to stop after saving */
	API_CMD_BALLOON,  /* "mib": balloon target */
	API_CMD_STATS,	  /* balloon, guest memory and process statistics */
	API_CMD_FOREGROUND, /* the app is in front: the guest's memory has priority */
	API_CMD_BACKGROUND, /* the app is behind: the host's memory has priority */
};

#define API_MAX_PATH 1024
#define API_MAX_MIB (1ULL << 24) /* largest "mib" accepted (16 TiB); the VM clamps to RAM */

struct api_request {
	enum api_cmd cmd;
	char path[API_MAX_PATH]; /* snapshot: absolute directory */
	bool exit;
	uint64_t mib; /* balloon: target in MiB, 0..API_MAX_MIB */
	bool balloon_auto; /* balloon: "auto":true hands the target back to the policy */
};

/*
 * api_parse_request - parse one request line (without the newline). Pure.
 * Returns 0, or -EINVAL with a reason in @err.
 */
int api_parse_request(const char *line, size_t len, struct api_request *req, char *err,
		      size_t errlen);

/* Name of a command, as on the wire. */
const char *api_cmd_name(enum api_cmd cmd);

struct api_client {
	int fd;
	char buf[API_MAX_LINE + 1];
	size_t len;
};

struct api_server {
	int listen_fd;
	char path[108];
	struct api_client client[API_MAX_CLIENTS];
};

struct vm;

/* Create the socket at @path with mode 0600 (an existing socket is replaced). */
int api_server_open(struct api_server *s, const char *path);
void api_server_close(struct api_server *s);

/* Add the server's fds to @pfd (room for 1 + API_MAX_CLIENTS); returns count. */
int api_server_pollfds(struct api_server *s, struct pollfd *pfd);

/* Handle readiness reported in @pfd[0..n) for @vm. */
void api_server_handle(struct api_server *s, struct pollfd *pfd, int n, struct vm *vm);

/* `pocketvm ctl PATH COMMAND`: send one request, print the reply. Exit status. */
int api_client_main(int argc, char **argv);

#endif
