// Whole-file reading, atomic writing (temporary name, fsync, rename, directory fsync) and
// small path helpers. Every file the project writes goes through atomic_write_*.
#ifndef RLHF_IO_FILES_H
#define RLHF_IO_FILES_H

#include <stddef.h>

#include "base/error.h"

// Reads a whole file (gzip-compressed files, by magic number, are inflated) into a NUL-terminated
// buffer (*out, *len excludes the NUL). Caller frees.
rlhf_status read_file(const char *path, char **out, size_t *len, rlhf_err *err);
// Writes data to path atomically.
rlhf_status atomic_write(const char *path, const void *data, size_t len, rlhf_err *err);
// Copies a file atomically.
rlhf_status copy_file(const char *src, const char *dst, rlhf_err *err);
// mkdir -p; ok if it exists.
rlhf_status make_dirs(const char *path, rlhf_err *err);
int file_exists(const char *path);
int dir_exists(const char *path);
// fsync a directory (after a rename inside it).
rlhf_status fsync_dir(const char *dir, rlhf_err *err);
// Joins dir and name into out (size n). Returns out.
char *path_join(char *out, size_t n, const char *dir, const char *name);

#endif
