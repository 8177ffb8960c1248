// safetensors reading (mmap, validated before trusted) and writing (byte-compatible with the
// safetensors library: 8-byte little-endian header length, JSON header padded with spaces to a
// multiple of 8, tensors in header order, written atomically).
#ifndef RLHF_IO_SAFETENSORS_H
#define RLHF_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL } st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[8];
    int64_t numel;
    const unsigned char *data;  // into the mapping: 8-byte aligned when the header length is a multiple
                                // of 8 (files from the library and st_write); st_to_f32 needs no alignment
    size_t nbytes;
} st_tensor;

// A set of tensors from one file, or from all shards of a model.safetensors.index.json.
typedef struct {
    st_tensor *tensors;
    int n;
    char *metadata_json;  // the "__metadata__" object as JSON text, or NULL
    // private: mappings
    void **maps;
    size_t *map_sizes;
    int n_maps;
} st_file;

// Opens path (a .safetensors file) read-only over mmap and validates the header: size sane,
// JSON well-formed, dtypes known, shape products match byte ranges, offsets inside the file,
// ranges neither overlapping nor leaving holes. Errors name the file and the tensor.
rlhf_status st_open(st_file *f, const char *path, rlhf_err *err);
// Opens DIR/model.safetensors, or DIR/model.safetensors.index.json and its shards.
rlhf_status st_open_model_dir(st_file *f, const char *dir, rlhf_err *err);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
// Converts a tensor of F32/F16/BF16/F64 to fp32 into out (numel floats).
rlhf_status st_to_f32(const st_tensor *t, float *out, rlhf_err *err);

// fp32 to bfloat16 / IEEE half, rounding to nearest even as torch's .to() does (NaN stays NaN, F16
// overflow becomes infinity, F16 subnormals are kept). Little-endian 16-bit words into out (n).
void st_f32_to_bf16(const float *in, uint16_t *out, size_t n);
void st_f32_to_f16(const float *in, uint16_t *out, size_t n);

// ---- writing ----
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data;  // nbytes = numel * dtype size
} st_write_tensor;

// Writes tensors (ordered as the safetensors library orders them: dtype alignment descending, then
// name; data laid out in the same order) with an optional metadata map (n_metadata pairs of key,
// value strings, written in the order given; may be NULL) to path via temporary file + fsync +
// rename + directory fsync. The bytes equal safetensors.torch.save_file's for the same input.
// The header data pointers must stay valid during the call.
rlhf_status st_write(const char *path, const st_write_tensor *tensors, int n, const char *const *metadata_kv,
                     int n_metadata, rlhf_err *err);

// The padded JSON header st_write writes (without the 8-byte length) in *header (malloc'd, *len
// bytes, not NUL-terminated), and in *order (malloc'd, n entries) the input index of each tensor in
// file order.
rlhf_status st_serialize_header(const st_write_tensor *tensors, int n, const char *const *metadata_kv,
                                int n_metadata, char **header, size_t *len, int **order, rlhf_err *err);
// Validates an in-memory file image as st_open does; f's tensors point into buf (not owned, must
// outlive f); name is used in error messages. st_close frees the index.
rlhf_status st_parse_buffer(st_file *f, const char *name, const void *buf, size_t size, rlhf_err *err);

size_t st_dtype_size(st_dtype d);
const char *st_dtype_name(st_dtype d);

#endif
