// Few-row dense kernels for decoding (see linear_small.h): register-blocked, written with GCC/Clang
// generic vectors so one source compiles to AVX-512, AVX2, SSE or NEON. The block shape follows the
// register file: ROWS x 2 vector accumulators must fit next to the loaded weight vectors.
#include "nn/linear_small.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

#if defined(__AVX512F__)
#include <immintrin.h>  // the permutes of vsum16
#define LS_VF 16   // floats per vector register
#define LS_ROWS 8  // rows per block: 8 x 2 accumulators of the 32 zmm registers
#elif defined(__AVX__)
#define LS_VF 8
#define LS_ROWS 4  // 16 ymm registers: 4 x 2 accumulators
#elif defined(__aarch64__)
#define LS_VF 4
#define LS_ROWS 8  // 32 NEON registers
#else
#define LS_VF 4
#define LS_ROWS 4
#endif
#define LS_JV 2    // vectors (conv1d) or weight rows (linear) per block

typedef float vfloat __attribute__((vector_size(LS_VF * sizeof(float))));

// acc + a * b as a multiply then an add, the rounding of the plain C the rest of the library compiles
// to (ISO C mode leaves contraction off): with fused multiply-adds conv1d ran ~10% faster on one core, but
// decoding with two threads is bound by memory, and outputs stay bit for bit those of the in-order sum.
static inline vfloat vmuladd(vfloat acc, vfloat a, vfloat b) { return acc + a * b; }
static inline vfloat vbroadcast(float x) {
    vfloat v;
    for (int i = 0; i < LS_VF; i++) v[i] = x;
    return v;
}
// The scalar remainders round as the vector lanes do.
static inline float smuladd(float acc, float a, float b) { return acc + a * b; }

// An empty asm that takes v in a vector register and may change it: the compiler must load v once and
// cannot fold the load into each use (no code is emitted).
#if defined(__x86_64__) || defined(__i386__)
#define KEEP_IN_REGISTER(v) __asm__("" : "+v"(v))
#elif defined(__aarch64__)
#define KEEP_IN_REGISTER(v) __asm__("" : "+w"(v))
#else
#define KEEP_IN_REGISTER(v) (void)(v)
#endif

// Unaligned vector load/store (memcpy compiles to one instruction and keeps strict aliasing).
static inline vfloat vload(const float *p) {
    vfloat v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vstore(float *p, vfloat v) { memcpy(p, &v, sizeof v); }

// Sum of the lanes in a fixed pairwise order.
static inline float vsum(vfloat v) {
    float a[LS_VF];
    vstore(a, v);
    for (int w = LS_VF / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) a[i] += a[i + w];
    return a[0];
}

#if LS_VF == 16
// The lane sums of 16 vectors at once (lane k of the result: the sum of v[k]), in vsum's order: each level
// adds lane i and lane i + w of every vector (w = 8, 4, 2, 1) while interleaving pairs of vectors, so 16
// sums cost 30 permutes and 15 adds instead of 16 separate reductions.
// Fully unrolled and inlined, so the 16 vectors stay in registers (a loop here compiled to a copy of them
// through the stack, a call to memcpy and a permute loop per block: ~40% of a 256-long block's time).
static inline __attribute__((always_inline)) vfloat vsum16(const vfloat *v) {
    __m512 a[16];
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++) a[k] = (__m512)v[k];
    // level w: inputs hold groups of w lanes (one group per original vector, 16 / (2w) vectors per input);
    // lo takes the first w lanes of every 2w-lane group of x then y, hi the second w lanes.
    static const int32_t lo_idx[4][16] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
        {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
        {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},
        {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}};
#pragma GCC unroll 4
    for (int level = 0; level < 4; level++) {
        const int n = 16 >> level;
        __m512i lo = _mm512_loadu_si512(lo_idx[level]);
        __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8 >> level));
#pragma GCC unroll 8
        for (int k = 0; k < n / 2; k++)
            a[k] = _mm512_add_ps(_mm512_permutex2var_ps(a[2 * k], lo, a[2 * k + 1]),
                                 _mm512_permutex2var_ps(a[2 * k], hi, a[2 * k + 1]));
    }
    return (vfloat)a[0];
}
#endif

static inline void put(float *o, float v, int accumulate) { *o = accumulate ? *o + v : v; }

// ---- nn.Linear layout: weight (OC, C), one dot product per output --------------------------------

// Weight rows ahead (eight blocks) prefetched while a block is read: the hardware prefetcher alone leaves
// the block's dot products waiting on memory (measured on GPT-2's lm_head, one thread: 5 -> 9.9 GB/s of
// the 13 GB/s a plain read gets; two blocks ahead gave 8.5).
#define LINEAR_PREFETCH_ROWS (8 * LS_JV)

// Outputs (rows n0 .. n0 + nb - 1, columns j0 .. j0 + J - 1): vector partial sums over the first
// C - C % LS_VF features, their lane sum, then the remaining features in order. x: LS_ROWS padded rows.
static inline __attribute__((always_inline)) void linear_block(float *out, const float *x, const float *weight,
                                                               int C, int OC, int n0, int nb, int j0, const int J,
                                                               int accumulate) {
    int Cv = C - C % LS_VF;
    vfloat acc[LS_ROWS][LS_JV];
#pragma GCC unroll 16
    for (int r = 0; r < LS_ROWS; r++)
#pragma GCC unroll 2
        for (int j = 0; j < J; j++) acc[r][j] = (vfloat){0};
    const float *w = weight + (size_t)j0 * C;
    for (int c = 0; c < Cv; c += LS_VF) {
        vfloat wv[LS_JV];
#pragma GCC unroll 2
        for (int j = 0; j < J; j++) {
            wv[j] = vload(w + (size_t)j * C + c);
            __builtin_prefetch(w + (size_t)(j + LINEAR_PREFETCH_ROWS) * C + c);
        }
#pragma GCC unroll 16
        for (int r = 0; r < LS_ROWS; r++) {
            vfloat xv = vload(x + (size_t)r * C + c);
            // One load per x vector, kept in a register: left alone, GCC folds it into each of the LS_JV
            // multiplies, and the loads (18 a step instead of 10) were the limit: GPT-2's lm_head 30 -> 46 GB/s.
            KEEP_IN_REGISTER(xv);
#pragma GCC unroll 2
            for (int j = 0; j < J; j++) acc[r][j] = vmuladd(acc[r][j], xv, wv[j]);
        }
    }
    float sums[LS_ROWS * LS_JV];
#if LS_VF == 16 && LS_ROWS * LS_JV == 16
    if (J == LS_JV) {
        vfloat all[16];
#pragma GCC unroll 16
        for (int r = 0; r < LS_ROWS; r++)
#pragma GCC unroll 2
            for (int j = 0; j < LS_JV; j++) all[r * LS_JV + j] = acc[r][j];
        vstore(sums, vsum16(all));
    } else
#endif
        for (int r = 0; r < nb; r++)
            for (int j = 0; j < J; j++) sums[r * LS_JV + j] = vsum(acc[r][j]);
    for (int r = 0; r < nb; r++)
        for (int j = 0; j < J; j++) {
            const float *xr = x + (size_t)r * C, *wr = w + (size_t)j * C;
            float s = sums[r * LS_JV + j];
            for (int c = Cv; c < C; c++) s = smuladd(s, xr[c], wr[c]);
            put(out + (size_t)(n0 + r) * OC + j0 + j, s, accumulate);
        }
}

void linear_small_n_forward(float *out, const float *inp, const float *weight, int N, int C, int OC,
                            int accumulate) {
    if (N <= 0 || OC <= 0) return;
    int nblocks = (N + LS_ROWS - 1) / LS_ROWS;
    // rows padded with zeros to whole blocks, so every block runs the fixed-size loop
    float *xpad = NULL;
    const float *x = inp;
    if (N % LS_ROWS) {
        xpad = calloc((size_t)nblocks * LS_ROWS * (C > 0 ? C : 1), sizeof(float));
        if (!xpad) {  // no room for the padding: plain dot products need none
            for (int n = 0; n < N; n++)
                for (int j = 0; j < OC; j++) {
                    float s = 0;
                    for (int c = 0; c < C; c++) s = smuladd(s, inp[(size_t)n * C + c], weight[(size_t)j * C + c]);
                    put(out + (size_t)n * OC + j, s, accumulate);
                }
            return;
        }
        memcpy(xpad, inp, sizeof(float) * (size_t)N * C);
        x = xpad;
    }
    int ncol = (OC + LS_JV - 1) / LS_JV;
#pragma omp parallel for schedule(static) if ((int64_t)OC * C > NN_PARALLEL_MIN)
    for (int cb = 0; cb < ncol; cb++) {
        int j0 = cb * LS_JV;
        for (int b = 0; b < nblocks; b++) {
            int n0 = b * LS_ROWS, nb = N - n0 < LS_ROWS ? N - n0 : LS_ROWS;
            const float *xb = x + (size_t)n0 * C;
            if (OC - j0 >= LS_JV)
                linear_block(out, xb, weight, C, OC, n0, nb, j0, LS_JV, accumulate);
            else
                linear_block(out, xb, weight, C, OC, n0, nb, j0, 1, accumulate);
        }
    }
    free(xpad);
}

// ---- Conv1D layout: weight (C, OC), vectors along the output columns ------------------------------

// Weight rows per tile. A thread owns a contiguous range of columns and walks it CONV_TILE_ROWS weight
// rows at a time, so it reads CONV_TILE_ROWS sequential streams (each row of its range, left to right),
// which the hardware prefetcher follows; a whole column block at a time would jump OC floats (9 KB for
// GPT-2's fused qkv) per 128 bytes read. The block accumulators live in a small buffer between tiles.
// 48 rows: GPT-2 small's four block shapes at 2 threads, 16 -> 48 rows (with the prefetch below) took
// the 12 layers from 17-20 ms to 11.5 ms a step (29 GB/s of the 55 GB/s a read-only sum gets).
#define CONV_TILE_ROWS 48
#define CONV_COLS (LS_JV * LS_VF)
// Column blocks ahead of the current one prefetched in every weight row of a tile, counted in the
// thread's own order: past the end of its column range they are the first blocks of the next tile's
// rows. (Prefetching past the range instead fetched the other thread's columns and left the start of
// every tile cold: with a 384-column range, 4 blocks of 12; 14 -> 25 GB/s on GPT-2's 768-wide outputs.)
#define CONV_PREFETCH_BLOCKS 4

// acc (LS_ROWS rows of stride ld) += rows c0 .. c1 - 1 of the product for columns j0 .. j0 + CONV_COLS - 1
// (c0 == 0: acc = those rows' sum, the buffer's old contents not read);
// xt: (C, LS_ROWS) the block's rows transposed (padding rows zero), so one feature's values are adjacent.
// pf: where to prefetch, the weight row of c0 at the block CONV_PREFETCH_BLOCKS ahead (read only as a hint).
static void conv1d_tile(float *acc_buf, size_t ld, const float *xt, const float *weight, int c0, int c1, int OC,
                        int j0, const float *pf) {
    vfloat acc[LS_ROWS][LS_JV];
#pragma GCC unroll 16
    for (int r = 0; r < LS_ROWS; r++)
#pragma GCC unroll 2
        for (int v = 0; v < LS_JV; v++) acc[r][v] = c0 == 0 ? (vfloat){0} : vload(acc_buf + r * ld + v * LS_VF);
    const float *w = weight + j0;
    for (int c = c0; c < c1; c++) {
        vfloat wv[LS_JV];
#pragma GCC unroll 2
        for (int v = 0; v < LS_JV; v++) {
            wv[v] = vload(w + (size_t)c * OC + v * LS_VF);
            __builtin_prefetch(pf + (size_t)(c - c0) * OC + v * LS_VF);
        }
        const float *xc = xt + (size_t)c * LS_ROWS;
#pragma GCC unroll 16
        for (int r = 0; r < LS_ROWS; r++)
#pragma GCC unroll 2
            for (int v = 0; v < LS_JV; v++) acc[r][v] = vmuladd(acc[r][v], vbroadcast(xc[r]), wv[v]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < LS_ROWS; r++)
#pragma GCC unroll 2
        for (int v = 0; v < LS_JV; v++) vstore(acc_buf + r * ld + v * LS_VF, acc[r][v]);
}

void conv1d_small_n_forward(float *out, const float *inp, const float *weight, int N, int C, int OC,
                            int accumulate) {
    if (N <= 0 || OC <= 0) return;
    int nblocks = (N + LS_ROWS - 1) / LS_ROWS, nfull = OC / CONV_COLS;
    size_t ld = (size_t)nfull * CONV_COLS, rows = (size_t)nblocks * LS_ROWS;
    float *xt = malloc(sizeof(float) * rows * (C > 0 ? C : 1));
    float *acc = malloc(sizeof(float) * rows * (ld > 0 ? ld : 1));  // (rows, ld) block accumulators
    if (!xt || !acc) {  // no room for the buffers: the same sums, one output at a time
        free(xt), free(acc);
        for (int n = 0; n < N; n++)
            for (int j = 0; j < OC; j++) {
                float s = 0;
                for (int c = 0; c < C; c++) s = smuladd(s, inp[(size_t)n * C + c], weight[(size_t)c * OC + j]);
                put(out + (size_t)n * OC + j, s, accumulate);
            }
        return;
    }
    if (C <= 0) memset(acc, 0, sizeof(float) * rows * (ld > 0 ? ld : 1));  // no tile sets them: empty sums
    // One parallel region per call: the threads transpose the input (each a range of features), then each
    // sums its own columns; the first tile of rows sets the accumulators, so nothing is cleared first.
#pragma omp parallel if ((int64_t)OC * C > NN_PARALLEL_MIN)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++)
            for (int b = 0; b < nblocks; b++)
                for (int r = 0; r < LS_ROWS; r++) {
                    int n = b * LS_ROWS + r;
                    xt[((size_t)b * C + c) * LS_ROWS + r] = n < N ? inp[(size_t)n * C + c] : 0.0f;
                }
        int cb0 = (int)((int64_t)nfull * t / nt), cb1 = (int)((int64_t)nfull * (t + 1) / nt);
        for (int c0 = 0; c0 < C; c0 += CONV_TILE_ROWS) {
            int c1 = C - c0 < CONV_TILE_ROWS ? C : c0 + CONV_TILE_ROWS;
            for (int cb = cb0; cb < cb1; cb++) {
                // the block to prefetch: ahead in this tile's rows, else in the next tile's (where that
                // tile is shorter than this one, as for the last, the current block again: a harmless hint
                // that keeps the address inside the weight)
                int pb = cb + CONV_PREFETCH_BLOCKS, pc = c0;
                if (pb >= cb1) pb = cb0 + (pb - cb1), pc = c0 + CONV_TILE_ROWS;
                if (pb >= cb1) pb = cb1 - 1;
                if (pc + (c1 - c0) > C) pb = cb, pc = c0;
                const float *pf = weight + (size_t)pc * OC + (size_t)pb * CONV_COLS;
                for (int b = 0; b < nblocks; b++)
                    conv1d_tile(acc + (size_t)b * LS_ROWS * ld + (size_t)cb * CONV_COLS, ld,
                                xt + (size_t)b * C * LS_ROWS, weight, c0, c1, OC, cb * CONV_COLS, pf);
            }
        }
        for (int n = 0; n < N; n++)
            for (int j = cb0 * CONV_COLS; j < cb1 * CONV_COLS; j++)
                put(out + (size_t)n * OC + j, acc[(size_t)n * ld + j], accumulate);
        // the last, partial column block: the same sums, scalar, split over the threads by row
        for (int n = t; n < N; n += nt)
            for (int j = nfull * CONV_COLS; j < OC; j++) {
                float s = 0;
                for (int c = 0; c < C; c++) s = smuladd(s, xt[((size_t)(n / LS_ROWS) * C + c) * LS_ROWS + n % LS_ROWS],
                                                   weight[(size_t)c * OC + j]);
                put(out + (size_t)n * OC + j, s, accumulate);
            }
    }
    free(xt);
    free(acc);
}
