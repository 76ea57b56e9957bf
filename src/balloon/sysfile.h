/*
 * File reading for the balloon signal readers (private to src/balloon).
 */
#ifndef POCKETVM_BALLOON_SYSFILE_H
#define POCKETVM_BALLOON_SYSFILE_H

#include <stddef.h>

/*
 * sig_path - "@dir/@name" into @dst (@cap bytes). 0 or -ENAMETOOLONG.
 */
int sig_path(char *dst, size_t cap, const char *dir, const char *name);

/*
 * sig_read - the whole of @path into *@buf, a heap buffer of *@cap bytes
 * that grows (realloc) up to @max; *@len gets the length. A file longer than
 * @max is -EFBIG. Returns 0 or -errno; *@buf stays owned by the caller.
 */
int sig_read(const char *path, char **buf, size_t *cap, size_t max, size_t *len);

/*
 * sig_read_small - the whole of @path into @buf (@cap bytes). -EFBIG when
 * longer. Returns 0 or -errno.
 */
int sig_read_small(const char *path, char *buf, size_t cap, size_t *len);

#endif
