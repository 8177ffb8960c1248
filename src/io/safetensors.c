// The safetensors format: reading over mmap with every header field validated against the file
// before any byte of data is trusted, sharded model directories (model.safetensors.index.json),
// dtype conversion to fp32, and a writer whose bytes equal the safetensors library's
// (safetensors/src/tensor.rs `prepare`): compact JSON header with "__metadata__" first, tensors
// ordered by dtype alignment descending then name, header padded with spaces to a multiple of 8,
// data contiguous in header order.
#include "base/strbuf.h"
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/files.h"
#include "io/utf8.h"

// The safetensors library refuses headers above 100 MB (MAX_HEADER_SIZE in tensor.rs).
#define ST_MAX_HEADER ((uint64_t)100000000)
#define ST_MAX_NDIM 8
// Offsets and dims are JSON numbers read as doubles: exact only up to 2^53.
#define ST_MAX_EXACT 9007199254740992.0
#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SINGLE_NAME "model.safetensors"

typedef struct {
    const char *name;
    st_dtype dtype;
    size_t size;
    int rank;  // position in the library's Dtype enum, which is ordered by alignment
} dtype_info;

// rank follows the library's enum (BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32,
// F32, F64, I64, U64); the writer sorts by it descending.
static const dtype_info DTYPES[] = {
    {"F32", ST_F32, 4, 11}, {"F16", ST_F16, 2, 7},  {"BF16", ST_BF16, 2, 8}, {"F64", ST_F64, 8, 12},
    {"I64", ST_I64, 8, 13}, {"I32", ST_I32, 4, 9},  {"I16", ST_I16, 2, 5},   {"I8", ST_I8, 1, 2},
    {"U8", ST_U8, 1, 1},    {"BOOL", ST_BOOL, 1, 0},
};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

static const dtype_info *dtype_lookup(st_dtype d) {
    for (int i = 0; i < N_DTYPES; i++)
        if (DTYPES[i].dtype == d) return &DTYPES[i];
    return NULL;
}

size_t st_dtype_size(st_dtype d) {
    const dtype_info *i = dtype_lookup(d);
    return i ? i->size : 0;
}

const char *st_dtype_name(st_dtype d) {
    const dtype_info *i = dtype_lookup(d);
    return i ? i->name : "?";
}

// ---- reading ----

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->metadata_json);
    for (int i = 0; i < f->n_maps; i++)
        if (f->maps[i] && f->map_sizes[i]) munmap(f->maps[i], f->map_sizes[i]);
    free(f->maps);
    free(f->map_sizes);
    memset(f, 0, sizeof *f);
}

// Reads a JSON number that must be a non-negative integer exactly representable.
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d != floor(d) || d > ST_MAX_EXACT) return 0;
    *out = (uint64_t)d;
    return 1;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} st_range;

static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Parses one tensor entry of the header into t (name already set); data pointers are set later.
static rlhf_status parse_entry(const char *path, const cJSON *e, st_tensor *t, uint64_t data_len, st_range *r,
                               rlhf_err *err) {
    const char *name = t->name;
    if (!cJSON_IsObject(e))
        return rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': header entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': missing \"dtype\"", path, name);
    if (!cJSON_IsArray(shape)) return rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': missing \"shape\"", path, name);
    if (!cJSON_IsArray(offs))
        return rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': missing \"data_offsets\"", path, name);
    const dtype_info *di = NULL;
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(DTYPES[i].name, dt->valuestring) == 0) di = &DTYPES[i];
    if (!di)
        return rlhf_fail(err, RLHF_EINPUT,
                         "%s: tensor '%s': unsupported dtype \"%.32s\" (expected F32, F16, BF16, F64, I64, I32, "
                         "I16, I8, U8 or BOOL)",
                         path, name, dt->valuestring);
    t->dtype = di->dtype;
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_NDIM)
        return rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': %d dimensions, at most %d supported", path, name, ndim,
                         ST_MAX_NDIM);
    t->ndim = ndim;
    // numel with overflow checks: each dim <= 2^53 and the running product bounded by the data size.
    uint64_t numel = 1;
    int d = 0, zero = 0;
    for (const cJSON *c = shape->child; c; c = c->next, d++) {
        uint64_t dim;
        if (!json_uint(c, &dim))
            return rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': shape[%d] is not a non-negative integer", path,
                             name, d);
        t->shape[d] = (int64_t)dim;
        if (dim == 0) zero = 1;
        if (!zero && dim && numel > data_len / dim)
            return rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': shape/bytes mismatch: shape[%d] = %llu makes the "
                             "tensor larger than the %llu-byte data region", path, name, d, (unsigned long long)dim,
                             (unsigned long long)data_len);
        numel = zero ? 0 : numel * dim;
    }
    uint64_t b, en;
    if (cJSON_GetArraySize(offs) != 2 || !json_uint(cJSON_GetArrayItem(offs, 0), &b) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &en))
        return rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': data_offsets must be [begin, end] integers", path,
                         name);
    if (en < b)
        return rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin", path,
                         name, (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        return rlhf_fail(err, RLHF_EINPUT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] out of range: the data region has %llu bytes "
                         "(truncated file?)",
                         path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_len);
    if (numel > data_len / di->size || numel * di->size != en - b)
        return rlhf_fail(err, RLHF_EINPUT,
                         "%s: tensor '%s': shape/bytes mismatch: %s shape has %llu elements (%llu bytes) but "
                         "data_offsets [%llu, %llu] span %llu bytes",
                         path, name, di->name, (unsigned long long)numel,
                         (unsigned long long)(numel * di->size), (unsigned long long)b, (unsigned long long)en,
                         (unsigned long long)(en - b));
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)(en - b);
    r->begin = b;
    r->end = en;
    return RLHF_OK;
}

// Validates a whole file image (buf, size) and fills f's tensors (pointing into buf) and metadata.
static rlhf_status parse_buffer(st_file *f, const char *path, const unsigned char *buf, uint64_t size,
                                rlhf_err *err) {
    if (size < 8)
        return rlhf_fail(err, RLHF_EINPUT, "%s: %llu bytes, too short for a safetensors file (truncated?)", path,
                         (unsigned long long)size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER)
        return rlhf_fail(err, RLHF_EINPUT, "%s: header length %llu exceeds the 100 MB limit (not a safetensors file?)",
                         path, (unsigned long long)hlen);
    if (hlen > size - 8)
        return rlhf_fail(err, RLHF_EINPUT, "%s: header length %llu beyond the end of the %llu-byte file (truncated?)",
                         path, (unsigned long long)hlen, (unsigned long long)size);
    const char *htext = (const char *)buf + 8;
    if (hlen == 0 || htext[0] != '{')
        return rlhf_fail(err, RLHF_EINPUT, "%s: header is not a JSON object", path);
    // The library reads the header as a Rust str: it must be UTF-8.
    long bad = utf8_invalid_at(htext, (size_t)hlen);
    if (bad >= 0)
        return rlhf_fail(err, RLHF_EINPUT, "%s: header is not valid UTF-8 (byte %ld of the header)", path, bad);
    const char *end = NULL;
    cJSON *h = cJSON_ParseWithLengthOpts(htext, (size_t)hlen, &end, 0);
    if (!h) {
        size_t off = end ? (size_t)(end - htext) : 0;
        return rlhf_fail(err, RLHF_EINPUT, "%s: header is not valid JSON (near byte %zu of the header)", path, off);
    }
    // Only padding spaces may follow the JSON object.
    for (const char *p = end; p < htext + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            cJSON_Delete(h);
            return rlhf_fail(err, RLHF_EINPUT, "%s: header has trailing bytes after the JSON object", path);
        }
    }
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return rlhf_fail(err, RLHF_EINPUT, "%s: header is not a JSON object", path);
    }
    uint64_t data_len = size - 8 - hlen;
    int n = 0;
    for (const cJSON *c = h->child; c; c = c->next) n++;
    f->tensors = calloc((size_t)(n ? n : 1), sizeof *f->tensors);
    st_range *ranges = calloc((size_t)(n ? n : 1), sizeof *ranges);
    rlhf_status s = RLHF_OK;
    if (!f->tensors || !ranges) {
        s = rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
        goto done;
    }
    const unsigned char *data = buf + 8 + hlen;
    for (const cJSON *c = h->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (f->metadata_json) {
                s = rlhf_fail(err, RLHF_EINPUT, "%s: duplicate \"__metadata__\"", path);
                goto done;
            }
            if (!cJSON_IsObject(c)) {
                s = rlhf_fail(err, RLHF_EINPUT, "%s: \"__metadata__\" must be an object of strings", path);
                goto done;
            }
            for (const cJSON *m = c->child; m; m = m->next) {
                if (!cJSON_IsString(m)) {
                    s = rlhf_fail(err, RLHF_EINPUT, "%s: \"__metadata__\" value '%s' is not a string", path,
                                  m->string);
                    goto done;
                }
            }
            f->metadata_json = cJSON_PrintUnformatted(c);
            if (!f->metadata_json) {
                s = rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
                goto done;
            }
            continue;
        }
        st_tensor *t = &f->tensors[f->n];
        t->name = strdup(c->string);
        if (!t->name) {
            s = rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
            goto done;
        }
        ranges[f->n].idx = f->n;
        f->n++;
        s = parse_entry(path, c, t, data_len, &ranges[f->n - 1], err);
        if (s != RLHF_OK) goto done;
        t->data = data + ranges[f->n - 1].begin;
    }
    // The library requires the ranges, in offset order, to tile the data region exactly: no overlap,
    // no hole, nothing after the last tensor.
    qsort(ranges, (size_t)f->n, sizeof *ranges, cmp_range);
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        const st_range *r = &ranges[i];
        if (r->begin < at) {
            s = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s'", path,
                          f->tensors[r->idx].name, (unsigned long long)r->begin, (unsigned long long)r->end,
                          f->tensors[ranges[i - 1].idx].name);
            goto done;
        }
        if (r->begin > at) {
            s = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s': data_offsets [%llu, %llu] leave a hole at byte %llu",
                          path, f->tensors[r->idx].name, (unsigned long long)r->begin, (unsigned long long)r->end,
                          (unsigned long long)at);
            goto done;
        }
        at = r->end;
    }
    if (at != data_len) {
        s = rlhf_fail(err, RLHF_EINPUT, "%s: tensors cover %llu bytes but the data region has %llu (trailing bytes)",
                      path, (unsigned long long)at, (unsigned long long)data_len);
        goto done;
    }
    // Duplicate names (JSON allows them; the library's map would keep one) are an error.
    {
        const char **names = malloc(sizeof *names * ((size_t)f->n + 1));
        if (!names) {
            s = rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
            goto done;
        }
        for (int i = 0; i < f->n; i++) names[i] = f->tensors[i].name;
        qsort(names, (size_t)f->n, sizeof *names, cmp_name_ptr);
        for (int i = 1; i < f->n && s == RLHF_OK; i++)
            if (strcmp(names[i], names[i - 1]) == 0)
                s = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s' appears twice in the header", path, names[i]);
        free(names);
    }
done:
    free(ranges);
    cJSON_Delete(h);
    return s;
}

rlhf_status st_parse_buffer(st_file *f, const char *name, const void *buf, size_t size, rlhf_err *err) {
    memset(f, 0, sizeof *f);
    rlhf_status s = parse_buffer(f, name, buf, size, err);
    if (s != RLHF_OK) st_close(f);
    return s;
}

rlhf_status st_open(st_file *f, const char *path, rlhf_err *err) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rlhf_fail(err, RLHF_EINPUT, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rlhf_fail(err, RLHF_EINPUT, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return rlhf_fail(err, RLHF_ERUNTIME, "%s: mmap failed (%s)", path, strerror(e));
        }
    }
    close(fd);
    f->maps = malloc(sizeof *f->maps);
    f->map_sizes = malloc(sizeof *f->map_sizes);
    if (!f->maps || !f->map_sizes) {
        if (map) munmap(map, size);
        st_close(f);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
    }
    f->maps[0] = map;
    f->map_sizes[0] = size;
    f->n_maps = 1;
    static const unsigned char empty[1] = {0};
    rlhf_status s = parse_buffer(f, path, map ? map : empty, size, err);
    if (s != RLHF_OK) st_close(f);
    return s;
}

// Moves the tensors and mappings of src onto the end of dst (src is left empty).
static rlhf_status st_merge(st_file *dst, st_file *src, const char *path, rlhf_err *err) {
    st_tensor *t = realloc(dst->tensors, sizeof *t * (size_t)(dst->n + src->n + 1));
    if (!t) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
    dst->tensors = t;
    void **maps = realloc(dst->maps, sizeof *maps * (size_t)(dst->n_maps + src->n_maps));
    if (!maps) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
    dst->maps = maps;
    size_t *sizes = realloc(dst->map_sizes, sizeof *sizes * (size_t)(dst->n_maps + src->n_maps));
    if (!sizes) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
    dst->map_sizes = sizes;
    memcpy(dst->tensors + dst->n, src->tensors, sizeof *t * (size_t)src->n);
    dst->n += src->n;
    memcpy(dst->maps + dst->n_maps, src->maps, sizeof *maps * (size_t)src->n_maps);
    memcpy(dst->map_sizes + dst->n_maps, src->map_sizes, sizeof *sizes * (size_t)src->n_maps);
    dst->n_maps += src->n_maps;
    if (!dst->metadata_json) {
        dst->metadata_json = src->metadata_json;
        src->metadata_json = NULL;
    }
    free(src->tensors);
    free(src->maps);
    free(src->map_sizes);
    free(src->metadata_json);
    memset(src, 0, sizeof *src);
    return RLHF_OK;
}

static rlhf_status open_sharded(st_file *f, const char *dir, const char *index_path, rlhf_err *err) {
    cJSON *idx = NULL;
    char *text;
    size_t len;
    RLHF_TRY(read_file(index_path, &text, &len, err));
    idx = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
    free(text);
    if (!idx) return rlhf_fail(err, RLHF_EINPUT, "%s: invalid JSON", index_path);
    rlhf_status s = RLHF_OK;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    int n_entries = cJSON_GetArraySize(wm);
    const char **shards = calloc((size_t)(n_entries ? n_entries : 1), sizeof *shards);
    int n_shards = 0;
    if (!shards) {
        s = rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", index_path);
        goto done;
    }
    if (!cJSON_IsObject(wm) || n_entries == 0) {
        s = rlhf_fail(err, RLHF_EINPUT, "%s: missing or empty \"weight_map\" object", index_path);
        goto done;
    }
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            s = rlhf_fail(err, RLHF_EINPUT, "%s: weight_map entry '%s' is not a file name", index_path, e->string);
            goto done;
        }
        // Shards live in the model directory; refuse names that would reach elsewhere.
        if (strchr(e->valuestring, '/') || strcmp(e->valuestring, "..") == 0 || !e->valuestring[0]) {
            s = rlhf_fail(err, RLHF_EINPUT, "%s: weight_map entry '%s': shard name '%s' is not a plain file name",
                          index_path, e->string, e->valuestring);
            goto done;
        }
        int seen = 0;
        for (int i = 0; i < n_shards && !seen; i++) seen = strcmp(shards[i], e->valuestring) == 0;
        if (!seen) shards[n_shards++] = e->valuestring;
    }
    // Each shard is opened once, in order of first appearance.
    for (int i = 0; i < n_shards; i++) {
        char path[4096];
        path_join(path, sizeof path, dir, shards[i]);
        st_file shard;
        s = st_open(&shard, path, err);
        if (s != RLHF_OK) goto done;
        for (int a = 0; a < shard.n; a++) {
            for (int b = 0; b < f->n; b++) {
                if (strcmp(shard.tensors[a].name, f->tensors[b].name) == 0) {
                    s = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s' appears in two shards", path,
                                  shard.tensors[a].name);
                    st_close(&shard);
                    goto done;
                }
            }
        }
        s = st_merge(f, &shard, path, err);
        if (s != RLHF_OK) {
            st_close(&shard);
            goto done;
        }
    }
    for (const cJSON *e = wm->child; e; e = e->next) {
        int found = 0;
        for (int b = 0; b < f->n && !found; b++) found = strcmp(f->tensors[b].name, e->string) == 0;
        if (!found) {
            s = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s' is listed in the index but missing from shard %s",
                          index_path, e->string, e->valuestring);
            goto done;
        }
    }
done:
    free(shards);
    cJSON_Delete(idx);
    if (s != RLHF_OK) st_close(f);
    return s;
}

rlhf_status st_open_model_dir(st_file *f, const char *dir, rlhf_err *err) {
    memset(f, 0, sizeof *f);
    char path[4096];
    path_join(path, sizeof path, dir, ST_SINGLE_NAME);
    if (file_exists(path)) return st_open(f, path, err);
    char index_path[4096];
    path_join(index_path, sizeof index_path, dir, ST_INDEX_NAME);
    if (file_exists(index_path)) return open_sharded(f, dir, index_path, err);
    return rlhf_fail(err, RLHF_EINPUT, "%s: no %s or %s", dir, ST_SINGLE_NAME, ST_INDEX_NAME);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

// IEEE half to float, subnormals, infinities and NaN included.
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: value = mant * 2^-24
            float v = (float)mant * 0x1p-24f;
            return sign ? -v : v;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

void st_f32_to_bf16(const float *in, uint16_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, &in[i], 4);
        if ((x & 0x7fffffffu) > 0x7f800000u) out[i] = (uint16_t)((x >> 16) | 0x40);  // quiet NaN
        else out[i] = (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
    }
}

static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {  // a half subnormal: man24 * 2^-(14 - e) in units of 2^-24
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t r = man >> shift, rest = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((uint32_t)e << 10) | (man >> 13), rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) r++;  // a carry rounds up into the exponent
    return (uint16_t)(sign | r);
}

void st_f32_to_f16(const float *in, uint16_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = f32_to_f16(in[i]);
}

rlhf_status st_to_f32(const st_tensor *t, float *out, rlhf_err *err) {
    size_t n = (size_t)t->numel;
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case ST_F32: memcpy(out, p, n * 4); return RLHF_OK;
    case ST_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            out[i] = f16_to_f32(h);
        }
        return RLHF_OK;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(p[2 * i] | (p[2 * i + 1] << 8)) << 16;
            memcpy(&out[i], &bits, 4);
        }
        return RLHF_OK;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return RLHF_OK;
    default:
        return rlhf_fail(err, RLHF_EINPUT, "tensor '%s' has dtype %s, expected a float type (F32, F16, BF16, F64)",
                         t->name, st_dtype_name(t->dtype));
    }
}

// ---- writing ----


// serde_json's string escaping: \" \\ \b \f \n \r \t, other control bytes as \u00xx, the rest raw.
static void hb_string(strbuf *b, const char *s) {
    strbuf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        switch (c) {
        case '"': strbuf_puts(b, "\\\""); break;
        case '\\': strbuf_puts(b, "\\\\"); break;
        case '\b': strbuf_puts(b, "\\b"); break;
        case '\f': strbuf_puts(b, "\\f"); break;
        case '\n': strbuf_puts(b, "\\n"); break;
        case '\r': strbuf_puts(b, "\\r"); break;
        case '\t': strbuf_puts(b, "\\t"); break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                strbuf_puts(b, tmp);
            } else {
                strbuf_put(b, (const char *)&c, 1);
            }
        }
    }
    strbuf_put(b, "\"", 1);
}

typedef struct {
    const st_write_tensor *t;
    size_t nbytes;
    int rank;
} wentry;

static int cmp_write_order(const void *a, const void *b) {
    const wentry *x = a, *y = b;
    if (x->rank != y->rank) return y->rank - x->rank;  // larger alignment first
    return strcmp(x->t->name, y->t->name);
}

rlhf_status st_serialize_header(const st_write_tensor *tensors, int n, const char *const *metadata_kv,
                                int n_metadata, char **out_header, size_t *out_len, int **out_order,
                                rlhf_err *err) {
    *out_header = NULL;
    *out_order = NULL;
    wentry *es = calloc((size_t)(n ? n : 1), sizeof *es);
    if (!es) return rlhf_fail(err, RLHF_ERUNTIME, "safetensors header: out of memory");
    for (int i = 0; i < n; i++) {
        const st_write_tensor *t = &tensors[i];
        const dtype_info *di = dtype_lookup(t->dtype);
        if (!di || t->ndim < 0 || t->ndim > ST_MAX_NDIM || !t->name) {
            free(es);
            return rlhf_fail(err, RLHF_ERUNTIME, "safetensors write: tensor '%s' has a bad dtype or ndim",
                             t->name ? t->name : "(null)");
        }
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) {
                free(es);
                return rlhf_fail(err, RLHF_ERUNTIME, "safetensors write: tensor '%s' has a negative dim", t->name);
            }
            numel *= (size_t)t->shape[d];
        }
        es[i].t = t;
        es[i].nbytes = numel * di->size;
        es[i].rank = di->rank;
    }
    qsort(es, (size_t)n, sizeof *es, cmp_write_order);
    for (int i = 1; i < n; i++)
        if (strcmp(es[i].t->name, es[i - 1].t->name) == 0) {
            rlhf_status s = rlhf_fail(err, RLHF_ERUNTIME, "safetensors write: tensor '%s' given twice", es[i].t->name);
            free(es);
            return s;
        }
    strbuf b = {0};
    strbuf_put(&b, "{", 1);
    int first = 1;
    if (metadata_kv && n_metadata > 0) {
        strbuf_puts(&b, "\"__metadata__\":{");
        for (int i = 0; i < n_metadata; i++) {
            if (i) strbuf_put(&b, ",", 1);
            hb_string(&b, metadata_kv[2 * i]);
            strbuf_put(&b, ":", 1);
            hb_string(&b, metadata_kv[2 * i + 1]);
        }
        strbuf_put(&b, "}", 1);
        first = 0;
    }
    size_t offset = 0;
    char num[64];
    for (int i = 0; i < n; i++) {
        const st_write_tensor *t = es[i].t;
        if (!first) strbuf_put(&b, ",", 1);
        first = 0;
        hb_string(&b, t->name);
        strbuf_puts(&b, ":{\"dtype\":\"");
        strbuf_puts(&b, st_dtype_name(t->dtype));
        strbuf_puts(&b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            strbuf_puts(&b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", offset, offset + es[i].nbytes);
        strbuf_puts(&b, num);
        offset += es[i].nbytes;
    }
    strbuf_put(&b, "}", 1);
    while (!b.oom && b.n % 8) strbuf_put(&b, " ", 1);  // tensor data starts 8-byte aligned
    int *order = malloc(sizeof *order * (size_t)(n ? n : 1));
    if (b.oom || !order) {
        free(b.p);
        free(order);
        free(es);
        return rlhf_fail(err, RLHF_ERUNTIME, "safetensors header: out of memory");
    }
    for (int i = 0; i < n; i++) order[i] = (int)(es[i].t - tensors);
    free(es);
    *out_header = b.p;
    *out_len = b.n;
    *out_order = order;
    return RLHF_OK;
}

rlhf_status st_write(const char *path, const st_write_tensor *tensors, int n, const char *const *metadata_kv,
                     int n_metadata, rlhf_err *err) {
    char *header;
    size_t hlen;
    int *order;
    rlhf_status s = st_serialize_header(tensors, n, metadata_kv, n_metadata, &header, &hlen, &order, err);
    if (s != RLHF_OK) return rlhf_err_prefix(err, "%s: ", path);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    atomic_file af;
    s = atomic_open(&af, path, err);
    if (s == RLHF_OK) s = atomic_append(&af, len8, 8, err);
    if (s == RLHF_OK) s = atomic_append(&af, header, hlen, err);
    for (int i = 0; i < n && s == RLHF_OK; i++) {
        const st_write_tensor *t = &tensors[order[i]];
        size_t nbytes = st_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) nbytes *= (size_t)t->shape[d];
        if (nbytes) s = atomic_append(&af, t->data, nbytes, err);
    }
    if (s == RLHF_OK) s = atomic_commit(&af, err);
    free(header);
    free(order);
    return s;
}
