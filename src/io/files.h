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
// 1 when path is a directory holding anything (an --output_dir that would be overwritten).
int dir_nonempty(const char *path);
// fsync a directory (after a rename inside it).
rlhf_status fsync_dir(const char *dir, rlhf_err *err);
// Joins dir and name into out (size n). Returns out.
char *path_join(char *out, size_t n, const char *dir, const char *name);

// Streaming form of atomic_write for large files (safetensors, copies): data goes to a temporary
// file next to path; atomic_commit fsyncs, renames over path and fsyncs the directory. Any failure
// (including in atomic_commit) removes the temporary file and leaves the old path untouched.
// Errors: the target directory missing or not writable -> RLHF_EINPUT; disk full, file size limit,
// I/O errors -> RLHF_ERUNTIME. Both name the path.
typedef struct {
    int fd;
    char *path;  // final name
    char *tmp;   // temporary name in the same directory
} atomic_file;
rlhf_status atomic_open(atomic_file *f, const char *path, rlhf_err *err);
rlhf_status atomic_append(atomic_file *f, const void *data, size_t len, rlhf_err *err);
rlhf_status atomic_commit(atomic_file *f, rlhf_err *err);
// Removes the temporary file; safe after a failed append/commit or on a zeroed struct.
void atomic_abort(atomic_file *f);

// Reads a file's raw bytes (no gzip inflation). Caller frees; NUL-terminated.
rlhf_status read_file_raw(const char *path, char **out, size_t *len, rlhf_err *err);

#endif
