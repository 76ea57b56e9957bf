/*
 * Text helpers shared by the balloon signal parsers (private to src/balloon).
 * A span is a [p, end) range of a buffer that need not be NUL-terminated.
 */
#ifndef POCKETVM_BALLOON_TEXT_H
#define POCKETVM_BALLOON_TEXT_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct span {
	const char *p, *end;
};

static inline bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Next line of @s (without its '\n') into @line; false at the end. */
static inline bool next_line(struct span *s, struct span *line)
{
	const char *nl;

	if (s->p >= s->end)
		return false;
	nl = memchr(s->p, '\n', (size_t)(s->end - s->p));
	line->p = s->p;
	line->end = nl ? nl : s->end;
	s->p = nl ? nl + 1 : s->end;
	return true;
}

static inline void skip_blank(struct span *s)
{
	while (s->p < s->end && is_blank(*s->p))
		s->p++;
}

static inline void trim(struct span *s)
{
	skip_blank(s);
	while (s->end > s->p && (is_blank(s->end[-1]) || s->end[-1] == '\n'))
		s->end--;
}

/* Consume the word @w if @s starts with it. */
static inline bool eat(struct span *s, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
		return false;
	s->p += n;
	return true;
}

/* The next blank-separated word of @s into @w (may be empty). */
static inline void word(struct span *s, struct span *w)
{
	skip_blank(s);
	w->p = s->p;
	while (s->p < s->end && !is_blank(*s->p))
		s->p++;
	w->end = s->p;
}

static inline bool word_is(const struct span *w, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(w->end - w->p) == n && memcmp(w->p, lit, n) == 0;
}

/* Decimal digits into @v: -EINVAL if none, -ERANGE on overflow. */
static inline int parse_u64(struct span *s, uint64_t *v)
{
	uint64_t x = 0;
	const char *start = s->p;

	while (s->p < s->end && is_digit(*s->p)) {
		unsigned d = (unsigned)(*s->p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -ERANGE;
		x = x * 10 + d;
		s->p++;
	}
	if (s->p == start)
		return -EINVAL;
	*v = x;
	return 0;
}

/* Optional '-' then digits; |value| capped by @cap (-ERANGE beyond). */
static inline int parse_i64(struct span *s, int64_t cap, int64_t *v)
{
	bool neg = eat(s, "-");
	uint64_t x;
	int rc = parse_u64(s, &x);

	if (rc)
		return rc;
	if (x > (uint64_t)cap)
		return -ERANGE;
	*v = neg ? -(int64_t)x : (int64_t)x;
	return 0;
}

/* Nothing but blanks left. */
static inline bool at_end(struct span *s)
{
	skip_blank(s);
	return s->p == s->end;
}

static inline int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b && a > UINT64_MAX / b)
		return -ERANGE;
	*out = a * b;
	return 0;
}

static inline int add_ok(uint64_t *acc, uint64_t v)
{
	if (*acc > UINT64_MAX - v)
		return -ERANGE;
	*acc += v;
	return 0;
}

#endif
