/* Control API request parsing. */
#include <string.h>

#include "api/api.h"
#include "harness.h"

static int parse(const char *s, struct api_request *r)
{
	char err[128];
	return api_parse_request(s, strlen(s), r, err, sizeof(err));
}

TEST(valid_requests)
{
	struct api_request r;
	static const struct { const char *in; enum api_cmd cmd; } ok[] = {
		{ "{\"cmd\":\"status\"}", API_CMD_STATUS },
		{ " { \"cmd\" : \"pause\" } ", API_CMD_PAUSE },
		{ "{\"cmd\":\"resume\"}\r", API_CMD_RESUME },
		{ "{\"cmd\":\"quit\"}", API_CMD_QUIT },
		{ "{\"c\\md\":\"quit\"}", API_CMD_QUIT },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int rc = parse(ok[i].in, &r);
		if (i == 4) { /* "\m" is not a JSON escape we accept */
			CHECK(rc < 0);
			continue;
		}
		CHECK_EQ(rc, 0);
		CHECK_EQ(r.cmd, ok[i].cmd);
	}
}

TEST(refused_requests)
{
	struct api_request r;
	static const char *bad[] = {
		"", "status", "{}", "{\"cmd\":\"reboot\"}", "{\"cmd\":1}",
		"{\"cmd\":\"status\",\"x\":\"y\"}", "{\"cmd\":\"status\"} x",
		"{\"cmd\":\"status\",\"cmd\":\"quit\"}", "{\"cmd\":\"status\"",
		"{\"cmd\" \"status\"}", "[\"status\"]", "{\"cmd\":\"stat\\u0075s\"}",
		"{\"cmd\":\"status\",}", "{\"cmd\":\"sta\ntus\"}",
		"{\"cmdcmdcmdcmdcmdcmdcmdcmdcmdcmdcmdcmdcmd\":\"status\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i], &r);
		if (rc == 0)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		CHECK(rc < 0);
	}
}

TEST(balloon_and_stats)
{
	struct api_request r;
	static const struct { const char *in; uint64_t mib; } ok[] = {
		{ "{\"cmd\":\"balloon\",\"mib\":0}", 0 },
		{ "{\"mib\": 256 ,\"cmd\":\"balloon\"}", 256 },
		{ "{\"cmd\":\"balloon\",\"mib\":16777216}", API_MAX_MIB },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK_EQ(parse(ok[i].in, &r), 0);
		CHECK_EQ(r.cmd, API_CMD_BALLOON);
		CHECK_EQ(r.mib, ok[i].mib);
	}
	CHECK_EQ(parse("{\"cmd\":\"stats\"}", &r), 0);
	CHECK_EQ(r.cmd, API_CMD_STATS);
	CHECK_EQ(r.mib, 0);
	static const char *bad[] = {
		"{\"cmd\":\"balloon\"}",			  /* no target */
		"{\"cmd\":\"balloon\",\"mib\":16777217}",	  /* above the cap */
		"{\"cmd\":\"balloon\",\"mib\":99999999999999999999999}",
		"{\"cmd\":\"balloon\",\"mib\":-1}",
		"{\"cmd\":\"balloon\",\"mib\":1.5}",
		"{\"cmd\":\"balloon\",\"mib\":1e3}",
		"{\"cmd\":\"balloon\",\"mib\":012}",
		"{\"cmd\":\"balloon\",\"mib\":\"12\"}",
		"{\"cmd\":\"balloon\",\"mib\":}",
		"{\"cmd\":\"balloon\",\"mib\":1,\"mib\":2}",
		"{\"cmd\":\"balloon\",\"mib\":1,\"path\":\"/x\"}",
		"{\"cmd\":\"stats\",\"mib\":1}",
		"{\"cmd\":\"status\",\"mib\":0}",
		"{\"cmd\":\"stats\",\"exit\":true}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i], &r);
		if (rc == 0)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		CHECK(rc < 0);
	}
	CHECK(!strcmp(api_cmd_name(API_CMD_BALLOON), "balloon"));
	CHECK(!strcmp(api_cmd_name(API_CMD_STATS), "stats"));
}

TEST(oversized)
{
	static char big[API_MAX_LINE + 10];
	struct api_request r;
	char err[128];
	memset(big, ' ', sizeof(big));
	CHECK(api_parse_request(big, sizeof(big), &r, err, sizeof(err)) < 0);
	CHECK(strstr(err, "longer") != NULL);
}

int main(void)
{
	RUN(valid_requests);
	RUN(refused_requests);
	RUN(balloon_and_stats);
	RUN(oversized);
	TEST_MAIN_END();
}
