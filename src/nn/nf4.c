// bitsandbytes-compatible 4-bit block quantization (NF4 / FP4, optional double quantization of the
// scales) and the quantized linear layer that dequantizes row tiles on the fly. Quantization follows
// bitsandbytes' CPU ("default") backend: scaled = clamp(x * (1 / absmax), -1, 1) in fp32, then
// torch.bucketize over the midpoints of the sorted code (ties go to the smaller code value).
#include "nn/nf4.h"

#include <cblas.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define NF4_HAVE_AVX512BF16 1
#else
#define NF4_HAVE_AVX512BF16 0
#endif

// Rows of the weight dequantized per tile: 128 rows of a 4096-wide layer are 2 MiB of fp32, which
// keeps the tile in L2/L3 while the GEMM streams the activations past it.
#define NF4_TILE_ROWS 128
// bitsandbytes clamps block maxima to this before taking the reciprocal (all-zero blocks).
#define NF4_ABSMAX_MIN 1e-38f

// bitsandbytes functional.get_4bit_type("nf4"): create_normal_map(offset=0.9677083), as published.
static const float NF4_CODE[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
    0.7229568362236023f, 1.0f};
// get_4bit_type("fp4"): bit patterns s eee m -> [0, 0.0625, 8, 12, 4, 6, 2, 3] (bias 2 exponent,
// subnormal 0b001), negated for the sign bit, divided by the maximum 12.
static const float FP4_CODE[16] = {
    0.0f / 12, 0.0625f / 12, 8.0f / 12, 12.0f / 12, 4.0f / 12, 6.0f / 12, 2.0f / 12, 3.0f / 12,
    -0.0f / 12, -0.0625f / 12, -8.0f / 12, -12.0f / 12, -4.0f / 12, -6.0f / 12, -2.0f / 12, -3.0f / 12};
// FP4 magnitudes in increasing order and their 3-bit patterns (code index without the sign bit).
static const int FP4_MAG_ORDER[8] = {0, 1, 6, 7, 4, 5, 2, 3};

rlhf_status nf4_quant_type_parse(const char *name, nf4_quant_type *out, rlhf_err *err) {
    if (strcmp(name, "nf4") == 0) *out = NF4_QUANT_NF4;
    else if (strcmp(name, "fp4") == 0) *out = NF4_QUANT_FP4;
    else return rlhf_fail(err, RLHF_EINPUT, "--bnb_4bit_quant_type: expected nf4 or fp4, got '%s'", name);
    return RLHF_OK;
}

rlhf_status nf4_compute_parse(const char *name, nf4_compute *out, rlhf_err *err) {
    if (strcmp(name, "float32") == 0) *out = NF4_COMPUTE_F32;
    else if (strcmp(name, "bfloat16") == 0) *out = NF4_COMPUTE_BF16;
    else
        return rlhf_fail(err, RLHF_EINPUT, "--bnb_4bit_compute_dtype: expected bfloat16 or float32, got '%s'",
                         name);
    return RLHF_OK;
}

const float *nf4_code(nf4_quant_type t) { return t == NF4_QUANT_NF4 ? NF4_CODE : FP4_CODE; }

// torch.bucketize(x, bounds, right=False): the number of bounds strictly below x.
static int bucketize(const float *bounds, int nb, float x) {
    int lo = 0, hi = nb;  // answer in [lo, hi]
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (bounds[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

uint8_t nf4_encode(nf4_quant_type t, float x) {
    if (t == NF4_QUANT_NF4) {
        float bounds[15];
        for (int i = 0; i < 15; i++) bounds[i] = (NF4_CODE[i] + NF4_CODE[i + 1]) / 2;
        return (uint8_t)bucketize(bounds, 15, x);
    }
    float mags[8], bounds[7];
    for (int i = 0; i < 8; i++) mags[i] = FP4_CODE[FP4_MAG_ORDER[i]];
    for (int i = 0; i < 7; i++) bounds[i] = (mags[i] + mags[i + 1]) / 2;
    int sign = x < 0 ? 8 : 0;
    return (uint8_t)(FP4_MAG_ORDER[bucketize(bounds, 7, fabsf(x))] | sign);
}

// torch.linspace(start, end, steps) in float32 as torch's CPU kernel computes it, because the dynamic
// map is built from it and a 1-ulp difference changes codes. The kernel counts up from start in the
// first half and down from end in the second; its vector path (8 floats, two vectors per iteration)
// computes each vector's base with a fused multiply-add and the lanes as base + j * step, and the
// scalar tail uses the fused form too. Checked bit for bit against torch 1.13 for 2..65 steps.
#define TORCH_LINSPACE_VEC 8
static float linspace_base(float start, float end, float step, int steps, int i) {
    return i < steps / 2 ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}
static void linspace_f32(float *out, float start, float end, int steps) {
    float step = (end - start) / (float)(steps - 1);
    int nvec = steps / (2 * TORCH_LINSPACE_VEC) * (2 * TORCH_LINSPACE_VEC);
    for (int i = 0; i < steps; i++) {
        if (i >= nvec) {
            out[i] = linspace_base(start, end, step, steps, i);
            continue;
        }
        int i0 = i / TORCH_LINSPACE_VEC * TORCH_LINSPACE_VEC;
        volatile float lane = (float)(i - i0) * step;  // not fused with the add, as in Vectorized::arange
        out[i] = linspace_base(start, end, step, steps, i0) + lane;
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void quant8_dynamic_map(float code[256]) {
    // Signed, 7 exponent bits, 8 bits: for each exponent i the linear fractions between 0.1 and 1
    // (2^i + 1 boundaries, their midpoints) scaled by 10^(i - 6), both signs; then 0 and 1.
    int n = 0;
    const int max_exponent_bits = 7;
    for (int i = 0; i < max_exponent_bits; i++) {
        int items = (1 << i) + 1;
        float b[65];
        linspace_f32(b, 0.1f, 1.0f, items);
        float scale = (float)pow(10.0, -(max_exponent_bits - 1) + i);
        for (int k = 0; k + 1 < items; k++) {
            float mean = (b[k] + b[k + 1]) / 2.0f;
            code[n++] = scale * mean;
            code[n++] = -scale * mean;
        }
    }
    code[n++] = 0.0f;
    code[n++] = 1.0f;
    qsort(code, 256, sizeof(float), cmp_float);
}

uint8_t quant8_encode(const float code[256], float x) {
    float bounds[255];
    for (int i = 0; i < 255; i++) bounds[i] = (code[i] + code[i + 1]) / 2;
    return (uint8_t)bucketize(bounds, 255, x);
}

// Block-wise absmax quantization of (n) values into 8-bit dynamic codes (bitsandbytes
// quantize_blockwise with blocksize 256): the second level of double quantization.
static void quant8_blockwise(uint8_t *q, float *scales, const float *x, int64_t n, const float code[256]) {
    float bounds[255];
    for (int i = 0; i < 255; i++) bounds[i] = (code[i] + code[i + 1]) / 2;
    for (int64_t b0 = 0, blk = 0; b0 < n; b0 += NF4_NESTED_BLOCKSIZE, blk++) {
        int64_t len = n - b0 < NF4_NESTED_BLOCKSIZE ? n - b0 : NF4_NESTED_BLOCKSIZE;
        float am = 0;
        for (int64_t i = 0; i < len; i++) am = fmaxf(am, fabsf(x[b0 + i]));
        scales[blk] = am;
        float inv = 1.0f / fmaxf(am, NF4_ABSMAX_MIN);
        for (int64_t i = 0; i < len; i++) {
            float s = fminf(fmaxf(x[b0 + i] * inv, -1.0f), 1.0f);
            q[b0 + i] = (uint8_t)bucketize(bounds, 255, s);
        }
    }
}

rlhf_status nf4_quantize(nf4_tensor *q, const float *w, int64_t n, nf4_quant_type type, int double_quant,
                         const char *what, rlhf_err *err) {
    memset(q, 0, sizeof *q);
    if (n <= 0) return rlhf_fail(err, RLHF_EINPUT, "%s: cannot quantize an empty tensor", what);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(w[i]))
            return rlhf_fail(err, RLHF_EINPUT, "%s: non-finite value at index %lld cannot be quantized", what,
                             (long long)i);
    q->type = type;
    q->n = n;
    q->nblocks = (n + NF4_BLOCKSIZE - 1) / NF4_BLOCKSIZE;
    q->double_quant = double_quant;
    quant8_dynamic_map(q->dyn_code);
    q->packed = calloc((size_t)(n + 1) / 2, 1);
    float *absmax = malloc(sizeof(float) * (size_t)q->nblocks);
    if (!q->packed || !absmax) {
        free(absmax);
        nf4_free(q);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory quantizing %lld values", what, (long long)n);
    }
    float bounds[15], mag_bounds[7];
    const float *code = nf4_code(type);
    for (int i = 0; i < 15; i++) bounds[i] = (code[i] + code[i + 1]) / 2;
    for (int i = 0; i < 7; i++) mag_bounds[i] = (FP4_CODE[FP4_MAG_ORDER[i]] + FP4_CODE[FP4_MAG_ORDER[i + 1]]) / 2;
    for (int64_t blk = 0; blk < q->nblocks; blk++) {
        int64_t b0 = blk * NF4_BLOCKSIZE;
        int64_t len = n - b0 < NF4_BLOCKSIZE ? n - b0 : NF4_BLOCKSIZE;
        float am = 0;
        for (int64_t i = 0; i < len; i++) am = fmaxf(am, fabsf(w[b0 + i]));
        absmax[blk] = am;
        float inv = 1.0f / fmaxf(am, NF4_ABSMAX_MIN);
        for (int64_t i = 0; i < len; i++) {
            float s = fminf(fmaxf(w[b0 + i] * inv, -1.0f), 1.0f);
            uint8_t c = type == NF4_QUANT_NF4
                            ? (uint8_t)bucketize(bounds, 15, s)
                            : (uint8_t)(FP4_MAG_ORDER[bucketize(mag_bounds, 7, fabsf(s))] | (s < 0 ? 8 : 0));
            int64_t j = b0 + i;
            q->packed[j / 2] |= (uint8_t)((j % 2 == 0) ? c << 4 : c);
        }
    }
    // An odd count is padded with the code of 0.0 (bitsandbytes pads the scaled values with zeros).
    if (n % 2) q->packed[n / 2] |= type == NF4_QUANT_NF4 ? nf4_encode(NF4_QUANT_NF4, 0.0f) : 0;
    if (!double_quant) {
        q->absmax = absmax;
        return RLHF_OK;
    }
    // Double quantization: the mean of the scales is subtracted, the residuals quantized in blocks of 256.
    // The mean is summed in double and rounded once; torch's float32 reduction can differ in the last
    // bit (never changed a code in our comparison, and the offset is stored, so dequantization agrees).
    double mean = 0;
    for (int64_t b = 0; b < q->nblocks; b++) mean += absmax[b];
    q->offset = (float)(mean / (double)q->nblocks);
    int64_t n2 = (q->nblocks + NF4_NESTED_BLOCKSIZE - 1) / NF4_NESTED_BLOCKSIZE;
    q->absmax_q = malloc((size_t)q->nblocks);
    q->absmax2 = malloc(sizeof(float) * (size_t)n2);
    if (!q->absmax_q || !q->absmax2) {
        free(absmax);
        nf4_free(q);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory quantizing scales", what);
    }
    for (int64_t b = 0; b < q->nblocks; b++) absmax[b] -= q->offset;
    quant8_blockwise(q->absmax_q, q->absmax2, absmax, q->nblocks, q->dyn_code);
    free(absmax);
    return RLHF_OK;
}

void nf4_free(nf4_tensor *q) {
    free(q->packed);
    free(q->absmax);
    free(q->absmax_q);
    free(q->absmax2);
    q->packed = NULL;
    q->absmax = q->absmax2 = NULL;
    q->absmax_q = NULL;
}

int64_t nf4_bytes(const nf4_tensor *q) {
    int64_t b = (q->n + 1) / 2;
    if (q->double_quant)
        b += q->nblocks + 4 * ((q->nblocks + NF4_NESTED_BLOCKSIZE - 1) / NF4_NESTED_BLOCKSIZE) + 4 + 256 * 4;
    else
        b += 4 * q->nblocks;
    return b;
}

float nf4_block_scale(const nf4_tensor *q, int64_t b) {
    if (!q->double_quant) return q->absmax[b];
    // dequantize_blockwise(absmax_q, state2) + offset, in fp32 as bitsandbytes
    return q->dyn_code[q->absmax_q[b]] * q->absmax2[b / NF4_NESTED_BLOCKSIZE] + q->offset;
}

void nf4_dequantize(float *out, const nf4_tensor *q, int64_t start, int64_t count) {
    const float *code = nf4_code(q->type);
    int64_t j = start, end = start + count;
    while (j < end) {
        int64_t blk = j / NF4_BLOCKSIZE;
        int64_t bend = (blk + 1) * NF4_BLOCKSIZE;
        if (bend > end) bend = end;
        const float s = nf4_block_scale(q, blk);
        float scaled[16];  // the block's 16 possible values
        for (int c = 0; c < 16; c++) scaled[c] = code[c] * s;
        if (j % 2 == 1 && j < bend) *out++ = scaled[q->packed[j / 2] & 0xF], j++;
        // whole bytes: high nibble first
        for (; j + 1 < bend; j += 2) {
            uint8_t byte = q->packed[j / 2];
            out[0] = scaled[byte >> 4];
            out[1] = scaled[byte & 0xF];
            out += 2;
        }
        if (j < bend) *out++ = scaled[q->packed[j / 2] >> 4], j++;
    }
}

// tile (rows, C) = dequantized rows o0 .. o0 + rows - 1 of a (OC, C) weight, rows in parallel.
static void dequantize_rows(float *tile, const nf4_tensor *w, int o0, int rows, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)rows * C >= 65536)
    for (int r = 0; r < rows; r++) nf4_dequantize(tile + (size_t)r * C, w, (int64_t)(o0 + r) * C, C);
}

// ---- bf16 --------------------------------------------------------------------------------------

float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) {
        u |= 0x00400000u;  // quiet NaN stays NaN after truncation
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    }
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

static void bf16_round_n(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
}

int nf4_bf16_native(void) { return NF4_HAVE_AVX512BF16; }

#if NF4_HAVE_AVX512BF16
// Converts n floats (n even) to packed bf16 pairs with round-to-nearest-even (vcvtne2ps2bf16).
static void to_bf16(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
    }
    for (; i < n; i++) {
        float r = bf16_round(src[i]);
        uint32_t u;
        memcpy(&u, &r, 4);
        dst[i] = (uint16_t)(u >> 16);
    }
}

// sum_c a[c] * b[c] over Cp bf16 values (Cp even) with vdpbf16ps, fp32 accumulation.
static float dot_bf16(const uint16_t *a, const uint16_t *b, int Cp) {
    __m512 acc = _mm512_setzero_ps();
    int c = 0;
    for (; c + 32 <= Cp; c += 32) {
        __m512i va = _mm512_loadu_si512((const void *)(a + c)), vb = _mm512_loadu_si512((const void *)(b + c));
        acc = _mm512_dpbf16_ps(acc, (__m512bh)va, (__m512bh)vb);
    }
    if (c < Cp) {
        __mmask32 m = (__mmask32)((1ull << (Cp - c)) - 1);
        __m512i va = _mm512_maskz_loadu_epi16(m, a + c), vb = _mm512_maskz_loadu_epi16(m, b + c);
        acc = _mm512_dpbf16_ps(acc, (__m512bh)va, (__m512bh)vb);
    }
    return _mm512_reduce_add_ps(acc);
}

static rlhf_status forward_bf16_native(float *out, const float *inp, const nf4_tensor *w, const float *bias,
                                       int N, int C, int OC, rlhf_err *err) {
    const int Cp = C + (C & 1);
    uint16_t *xb = calloc((size_t)N * Cp, sizeof(uint16_t));
    uint16_t *wb = calloc((size_t)NF4_TILE_ROWS * Cp, sizeof(uint16_t));
    float *row = malloc(sizeof(float) * (size_t)C * NF4_TILE_ROWS);
    if (!xb || !wb || !row) {
        free(xb); free(wb); free(row);
        return rlhf_fail(err, RLHF_ERUNTIME, "nf4 linear: out of memory for bf16 buffers (N=%d C=%d)", N, C);
    }
    for (int n = 0; n < N; n++) to_bf16(xb + (size_t)n * Cp, inp + (size_t)n * C, C);
    // One tile of weight rows at a time goes to fp32 and then bf16; the full weight is never expanded.
    for (int o0 = 0; o0 < OC; o0 += NF4_TILE_ROWS) {
        int rows = OC - o0 < NF4_TILE_ROWS ? OC - o0 : NF4_TILE_ROWS;
        dequantize_rows(row, w, o0, rows, C);
        for (int r = 0; r < rows; r++) to_bf16(wb + (size_t)r * Cp, row + (size_t)r * C, C);
#pragma omp parallel for schedule(static) collapse(2)
        for (int n = 0; n < N; n++)
            for (int r = 0; r < rows; r++) {
                float acc = dot_bf16(xb + (size_t)n * Cp, wb + (size_t)r * Cp, Cp);
                if (bias) acc += bf16_round(bias[o0 + r]);
                out[(size_t)n * OC + o0 + r] = bf16_round(acc);
            }
    }
    free(xb);
    free(wb);
    free(row);
    return RLHF_OK;
}
#endif

// ---- few rows (token-by-token decoding) -------------------------------------------------------
// With a handful of input rows the tile + GEMM path spends its time on per-tile parallel regions and
// on writing and re-reading each fp32 tile. Here one parallel region covers the layer: each output
// feature's weight row is decoded block by block (16 scaled code values per block, looked up per
// nibble) straight into the dot products with the N inputs. Each output is computed by one thread in a
// fixed order, so results depend neither on N nor on the thread count.
#define NF4_FEW_ROWS 16
#define NF4_LANES 16

#if defined(__AVX512F__) && defined(__AVX2__)
#include <immintrin.h>
#define NF4_HAVE_AVX512 1
// The 64 codes of one block (32 packed bytes, high nibble first) as 4 x 16 lane indices in value order.
static inline void block_indices(const uint8_t *p, __m512i idx[4]) {
    const __m256i b = _mm256_loadu_si256((const __m256i *)p), m = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(b, m), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m);
    // unpack interleaves within 128-bit lanes: a = values 0-15 | 32-47, c = values 16-31 | 48-63
    const __m256i a = _mm256_unpacklo_epi8(hi, lo), c = _mm256_unpackhi_epi8(hi, lo);
    idx[0] = _mm512_cvtepu8_epi32(_mm256_castsi256_si128(a));
    idx[1] = _mm512_cvtepu8_epi32(_mm256_castsi256_si128(c));
    idx[2] = _mm512_cvtepu8_epi32(_mm256_extracti128_si256(a, 1));
    idx[3] = _mm512_cvtepu8_epi32(_mm256_extracti128_si256(c, 1));
}
#else
#define NF4_HAVE_AVX512 0
#endif

// The 16 values of block b (code * scale, rounded to bf16 for bf16 compute), as nf4_dequantize forms them.
static inline void block_table(float t[16], const float *code, const nf4_tensor *w, int64_t b, int bf16) {
    const float s = nf4_block_scale(w, b);
    for (int c = 0; c < 16; c++) t[c] = bf16 ? bf16_round(code[c] * s) : code[c] * s;
}

// out (N, OC) = x (N, C) @ W^T (+ bias); x already bf16-rounded for bf16 compute. rows: one C-float
// scratch row per thread (unused on the blocked AVX-512 path).
static void forward_few_rows(float *out, const float *x, const nf4_tensor *w, const float *bias, int N, int C, int OC,
                             int bf16, int blocked, float *rows) {
    const float *code = nf4_code(w->type);
    (void)code;
#pragma omp parallel
    {
#ifdef _OPENMP
        float *row = rows ? rows + (size_t)omp_get_thread_num() * C : NULL;
#else
        float *row = rows;
#endif
#pragma omp for schedule(static)
        for (int o = 0; o < OC; o++) {
            float sum[NF4_FEW_ROWS];
#if NF4_HAVE_AVX512
            if (blocked) {
                __m512 acc[NF4_FEW_ROWS];
                for (int n = 0; n < N; n++) acc[n] = _mm512_setzero_ps();
                const int64_t b0 = (int64_t)o * C / NF4_BLOCKSIZE;
                for (int k = 0; k < C / NF4_BLOCKSIZE; k++) {
                    float t[16];
                    block_table(t, code, w, b0 + k, bf16);
                    const __m512 table = _mm512_loadu_ps(t);
                    __m512i idx[4];
                    block_indices(w->packed + (b0 + k) * (NF4_BLOCKSIZE / 2), idx);
                    for (int q = 0; q < 4; q++) {
                        const __m512 wv = _mm512_permutexvar_ps(idx[q], table);
                        const float *xk = x + (size_t)k * NF4_BLOCKSIZE + q * 16;
                        for (int n = 0; n < N; n++)
                            acc[n] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xk + (size_t)n * C), acc[n]);
                    }
                }
                for (int n = 0; n < N; n++) sum[n] = _mm512_reduce_add_ps(acc[n]);
            }
#endif
            if (!blocked) {
                nf4_dequantize(row, w, (int64_t)o * C, C);
                if (bf16) bf16_round_n(row, C);
                for (int n = 0; n < N; n++) {
                    const float *xn = x + (size_t)n * C;
                    float lane[NF4_LANES] = {0};
                    int c = 0;
                    for (; c + NF4_LANES <= C; c += NF4_LANES)
                        for (int l = 0; l < NF4_LANES; l++) lane[l] += row[c + l] * xn[c + l];
                    for (; c < C; c++) lane[c % NF4_LANES] += row[c] * xn[c];
                    float s = 0;
                    for (int l = 0; l < NF4_LANES; l++) s += lane[l];
                    sum[n] = s;
                }
            }
            for (int n = 0; n < N; n++) {
                float v = sum[n];
                if (bias) v += bf16 ? bf16_round(bias[o]) : bias[o];
                out[(size_t)n * OC + o] = bf16 ? bf16_round(v) : v;
            }
        }
    }
}

// ---- the quantized linear layer ----------------------------------------------------------------

rlhf_status nf4_linear_forward(float *out, const float *inp, const nf4_tensor *w, const float *bias, int N, int C,
                               int OC, nf4_compute compute, rlhf_err *err) {
    if (w->n != (int64_t)OC * C)
        return rlhf_fail(err, RLHF_EINPUT, "nf4 linear: weight holds %lld values, expected OC*C = %d*%d",
                         (long long)w->n, OC, C);
    const int bf16 = compute == NF4_COMPUTE_BF16;
    if (N <= NF4_FEW_ROWS) {  // decoding, bf16 or fp32: bf16 products are exact in fp32, so only rounding differs
        const int blocked = NF4_HAVE_AVX512 && C % NF4_BLOCKSIZE == 0;  // every weight row starts a block
#ifdef _OPENMP
        const int nthreads = omp_get_max_threads();
#else
        const int nthreads = 1;
#endif
        float *xb = bf16 ? malloc(sizeof(float) * (size_t)N * C) : NULL;
        float *rows = blocked ? NULL : malloc(sizeof(float) * (size_t)C * (size_t)nthreads);
        if ((bf16 && !xb) || (!blocked && !rows)) {
            free(xb), free(rows);
            return rlhf_fail(err, RLHF_ERUNTIME, "nf4 linear: out of memory (N=%d C=%d)", N, C);
        }
        if (bf16) {
            memcpy(xb, inp, sizeof(float) * (size_t)N * C);
            bf16_round_n(xb, (int64_t)N * C);
        }
        forward_few_rows(out, bf16 ? xb : inp, w, bias, N, C, OC, bf16, blocked, rows);
        free(xb);
        free(rows);
        return RLHF_OK;
    }
#if NF4_HAVE_AVX512BF16
    if (bf16) return forward_bf16_native(out, inp, w, bias, N, C, OC, err);
#endif
    float *tile = malloc(sizeof(float) * (size_t)C * NF4_TILE_ROWS);
    float *xr = bf16 ? malloc(sizeof(float) * (size_t)N * C) : NULL;
    if (!tile || (bf16 && !xr)) {
        free(tile); free(xr);
        return rlhf_fail(err, RLHF_ERUNTIME, "nf4 linear: out of memory for a %d x %d tile", NF4_TILE_ROWS, C);
    }
    const float *x = inp;
    if (bf16) {
        memcpy(xr, inp, sizeof(float) * (size_t)N * C);
        bf16_round_n(xr, (int64_t)N * C);
        x = xr;
    }
    for (int o0 = 0; o0 < OC; o0 += NF4_TILE_ROWS) {
        int rows = OC - o0 < NF4_TILE_ROWS ? OC - o0 : NF4_TILE_ROWS;
        dequantize_rows(tile, w, o0, rows, C);
        if (bf16) bf16_round_n(tile, (int64_t)rows * C);
        // out[:, o0:o0+rows] = x @ tile^T (bf16 products are exact in fp32, so this is bf16 math)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, rows, C, 1.0f, x, C, tile, C, 0.0f, out + o0, OC);
    }
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        if (bias)
            for (int j = 0; j < OC; j++) o[j] += bf16 ? bf16_round(bias[j]) : bias[j];
        if (bf16) bf16_round_n(o, OC);
    }
    free(tile);
    free(xr);
    return RLHF_OK;
}

rlhf_status nf4_linear_backward(float *dinp, const float *dout, const nf4_tensor *w, int N, int C, int OC,
                                nf4_compute compute, rlhf_err *err) {
    if (w->n != (int64_t)OC * C)
        return rlhf_fail(err, RLHF_EINPUT, "nf4 linear backward: weight holds %lld values, expected OC*C = %d*%d",
                         (long long)w->n, OC, C);
    const int bf16 = compute == NF4_COMPUTE_BF16;
    float *tile = malloc(sizeof(float) * (size_t)C * NF4_TILE_ROWS);
    // bf16: the product is rounded once, so it is accumulated apart from dinp first.
    float *acc = bf16 ? calloc((size_t)N * C, sizeof(float)) : NULL;
    float *dr = bf16 ? malloc(sizeof(float) * (size_t)N * OC) : NULL;
    if (!tile || (bf16 && (!acc || !dr))) {
        free(tile); free(acc); free(dr);
        return rlhf_fail(err, RLHF_ERUNTIME, "nf4 linear backward: out of memory (N=%d C=%d OC=%d)", N, C, OC);
    }
    const float *g = dout;
    if (bf16) {
        memcpy(dr, dout, sizeof(float) * (size_t)N * OC);
        bf16_round_n(dr, (int64_t)N * OC);
        g = dr;
    }
    float *target = bf16 ? acc : dinp;
    for (int o0 = 0; o0 < OC; o0 += NF4_TILE_ROWS) {
        int rows = OC - o0 < NF4_TILE_ROWS ? OC - o0 : NF4_TILE_ROWS;
        dequantize_rows(tile, w, o0, rows, C);
        if (bf16) bf16_round_n(tile, (int64_t)rows * C);
        // target += g[:, o0:o0+rows] @ tile
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, rows, 1.0f, g + o0, OC, tile, C, 1.0f, target,
                    C);
    }
    if (bf16)
        for (int64_t i = 0; i < (int64_t)N * C; i++) dinp[i] += bf16_round(acc[i]);
    free(tile);
    free(acc);
    free(dr);
    return RLHF_OK;
}
