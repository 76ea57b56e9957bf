/* Command-line values: sizes and disk specs. */
#include <string.h>

#include "core/config.h"
#include "harness.h"

TEST(sizes)
{
	uint64_t v;
	CHECK_EQ(config_parse_size("512M", &v), 0);
	CHECK_EQ(v, 512ULL << 20);
	CHECK_EQ(config_parse_size("1G", &v), 0);
	CHECK_EQ(v, 1ULL << 30);
	CHECK_EQ(config_parse_size("2GiB", &v), 0);
	CHECK_EQ(v, 2ULL << 30);
	CHECK_EQ(config_parse_size("4096", &v), 0);
	CHECK_EQ(v, 4096);
	CHECK(config_parse_size("", &v) < 0);
	CHECK(config_parse_size("-1G", &v) < 0);
	CHECK(config_parse_size("12X", &v) < 0);
	CHECK(config_parse_size("1G2", &v) < 0);
	CHECK(config_parse_size("99999999999999999999", &v) < 0);
	CHECK(config_parse_size("17179869184T", &v) < 0); /* overflows */
}

TEST(disks)
{
	struct disk_config d;
	char err[256];
	char a[] = "root.img";
	CHECK_EQ(config_parse_disk(a, &d, err, sizeof(err)), 0);
	CHECK(!strcmp(d.path, "root.img") && !d.readonly && !d.serial);
	char b[] = "data.img,ro,serial=ABC";
	CHECK_EQ(config_parse_disk(b, &d, err, sizeof(err)), 0);
	CHECK(d.readonly && !strcmp(d.serial, "ABC"));
	char c[] = "x.img,readonly";
	CHECK(config_parse_disk(c, &d, err, sizeof(err)) < 0);
	CHECK(strstr(err, "readonly") != NULL);
	char e[] = "x.img,serial=123456789012345678901";
	CHECK(config_parse_disk(e, &d, err, sizeof(err)) < 0);
	char f[] = ",ro";
	CHECK(config_parse_disk(f, &d, err, sizeof(err)) < 0);
}

int main(void)
{
	RUN(sizes);
	RUN(disks);
	TEST_MAIN_END();
}
