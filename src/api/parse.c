/*
 * Request parsing: a deliberately small JSON reader for one flat object with
 * string keys and string values, plus the boolean "exit" and the integer
 * "mib". Anything else is refused with a reason.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"

static const char *const cmd_names[] = {
	[API_CMD_STATUS] = "status",
	[API_CMD_PAUSE] = "pause",
	[API_CMD_RESUME] = "resume",
	[API_CMD_QUIT] = "quit",
	[API_CMD_SNAPSHOT] = "snapshot",
	[API_CMD_BALLOON] = "balloon",
	[API_CMD_STATS] = "stats",
	[API_CMD_FOREGROUND] = "foreground",
	[API_CMD_BACKGROUND] = "background",
};

const char *api_cmd_name(enum api_cmd cmd)
{
	return (unsigned)cmd < sizeof(cmd_names) / sizeof(cmd_names[0]) ? cmd_names[cmd] : "?";
}

struct cursor {
	const char *p, *end;
};

static void skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

/* Read a non-negative JSON integer (no sign, fraction, exponent or leading
 * zero) of at most @max. */
static int read_uint(struct cursor *c, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	const char *start = c->p;

	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if (c->p - start == 1 && *start == '0')
			return -1; /* leading zero */
		v = v * 10 + (uint64_t)(*c->p++ - '0');
		if (v > max)
			return -1;
	}
	if (c->p == start)
		return -1;
	*out = v;
	return 0;
}

/* Read the JSON literal true or false. */
static int read_bool(struct cursor *c, bool *out)
{
	size_t left = (size_t)(c->end - c->p);

	if (left >= 4 && !memcmp(c->p, "true", 4)) {
		*out = true;
		c->p += 4;
	} else if (left >= 5 && !memcmp(c->p, "false", 5)) {
		*out = false;
		c->p += 5;
	} else {
		return -1;
	}
	return 0;
}

/* Read a JSON string of plain characters into @out (no escapes beyond \" \\ \/). */
static int read_string(struct cursor *c, char *out, size_t max)
{
	size_t n = 0;

	if (c->p >= c->end || *c->p != '"')
		return -1;
	c->p++;
	while (c->p < c->end && *c->p != '"') {
		char ch = *c->p++;
		if ((unsigned char)ch < 0x20)
			return -1;
		if (ch == '\\') {
			if (c->p >= c->end)
				return -1;
			ch = *c->p++;
			if (ch != '"' && ch != '\\' && ch != '/')
				return -1;
		}
		if (n + 1 >= max)
			return -1;
		out[n++] = ch;
	}
	if (c->p >= c->end)
		return -1;
	c->p++;
	out[n] = 0;
	return 0;
}

int api_parse_request(const char *line, size_t len, struct api_request *req, char *err,
		      size_t errlen)
{
	struct cursor c = { line, line + len };
	char key[32], val[API_MAX_PATH];
	bool have_cmd = false, have_path = false, have_exit = false, have_mib = false;
	bool have_auto = false;

	memset(req, 0, sizeof(*req));
	if (len > API_MAX_LINE) {
		snprintf(err, errlen, "request longer than %d bytes", API_MAX_LINE);
		return -EINVAL;
	}
	skip_ws(&c);
	if (c.p >= c.end || *c.p++ != '{') {
		snprintf(err, errlen, "request is not a JSON object");
		return -EINVAL;
	}
	skip_ws(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
	} else {
		for (;;) {
			skip_ws(&c);
			if (read_string(&c, key, sizeof(key))) {
				snprintf(err, errlen, "bad or too long key");
				return -EINVAL;
			}
			skip_ws(&c);
			if (c.p >= c.end || *c.p++ != ':') {
				snprintf(err, errlen, "expected ':' after key");
				return -EINVAL;
			}
			skip_ws(&c);
			if (strcmp(key, "exit") == 0 || strcmp(key, "auto") == 0) {
				bool is_exit = key[0] == 'e';
				bool *have = is_exit ? &have_exit : &have_auto;
				if (*have || read_bool(&c, is_exit ? &req->exit : &req->balloon_auto)) {
					snprintf(err, errlen, "\"%s\" must be given once, as true or false",
						 key);
					return -EINVAL;
				}
				*have = true;
			} else if (strcmp(key, "mib") == 0) {
				if (have_mib || read_uint(&c, API_MAX_MIB, &req->mib)) {
					snprintf(err, errlen, "\"mib\" must be given once, as an integer "
						 "from 0 to %llu", (unsigned long long)API_MAX_MIB);
					return -EINVAL;
				}
				have_mib = true;
			} else if (read_string(&c, val, sizeof(val))) {
				snprintf(err, errlen, "value of \"%s\" must be a string shorter than %d "
					 "bytes", key, API_MAX_PATH);
				return -EINVAL;
			} else if (strcmp(key, "path") == 0) {
				if (have_path || val[0] != '/') {
					snprintf(err, errlen, "\"path\" must be given once, as an absolute path");
					return -EINVAL;
				}
				memcpy(req->path, val, sizeof(req->path));
				have_path = true;
			} else if (strcmp(key, "cmd") == 0) {
				if (have_cmd) {
					snprintf(err, errlen, "duplicate \"cmd\"");
					return -EINVAL;
				}
				size_t i;
				for (i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
					if (strcmp(val, cmd_names[i]) == 0)
						break;
				if (i == sizeof(cmd_names) / sizeof(cmd_names[0])) {
					snprintf(err, errlen, "unknown command \"%s\"", val);
					return -EINVAL;
				}
				req->cmd = (enum api_cmd)i;
				have_cmd = true;
			} else {
				snprintf(err, errlen, "unknown key \"%s\"", key);
				return -EINVAL;
			}
			skip_ws(&c);
			if (c.p < c.end && *c.p == ',') {
				c.p++;
				continue;
			}
			if (c.p < c.end && *c.p == '}') {
				c.p++;
				break;
			}
			snprintf(err, errlen, "expected ',' or '}'");
			return -EINVAL;
		}
	}
	skip_ws(&c);
	if (c.p != c.end) {
		snprintf(err, errlen, "trailing characters after the object");
		return -EINVAL;
	}
	if (!have_cmd) {
		snprintf(err, errlen, "missing \"cmd\"");
		return -EINVAL;
	}
	if (req->cmd == API_CMD_SNAPSHOT && !have_path) {
		snprintf(err, errlen, "snapshot needs \"path\"");
		return -EINVAL;
	}
	if (req->cmd == API_CMD_BALLOON && have_mib == (have_auto && req->balloon_auto)) {
		snprintf(err, errlen, "balloon needs \"mib\" (a fixed target) or \"auto\":true "
			 "(back to the policy), not both");
		return -EINVAL;
	}
	if (req->cmd != API_CMD_BALLOON && have_auto) {
		snprintf(err, errlen, "\"%s\" takes no \"auto\"", cmd_names[req->cmd]);
		return -EINVAL;
	}
	if (req->cmd != API_CMD_SNAPSHOT && (have_path || have_exit)) {
		snprintf(err, errlen, "\"%s\" takes no arguments", cmd_names[req->cmd]);
		return -EINVAL;
	}
	if (req->cmd != API_CMD_BALLOON && have_mib) {
		snprintf(err, errlen, "\"%s\" takes no \"mib\"", cmd_names[req->cmd]);
		return -EINVAL;
	}
	return 0;
}
