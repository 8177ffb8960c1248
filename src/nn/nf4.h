// 4-bit weight quantization as bitsandbytes does it (QLoRA, Dettmers et al. 2023), on CPU: a frozen
// weight is cut into blocks of 64 consecutive values (row-major flat order), each block scaled by its
// absolute maximum into [-1, 1] and rounded to the nearest of 16 code values (NF4: quantiles of a
// normal distribution; FP4: 1 sign, 2 exponent, 1 mantissa bit). Two codes share a byte, the element
// with the even index in the HIGH nibble. With double quantization the fp32 block scales are
// themselves stored as 8-bit codes of bitsandbytes' signed dynamic map in blocks of 256, after
// subtracting their mean (the "offset"). The layout (packed nibbles, absmax codes, second-level
// scales, offset) is bitsandbytes' QuantState, so a GPU backend can reuse it.
//
// Matmuls never materialise the whole fp32 weight: tiles of rows are dequantized on the fly into
// fp32, or into bf16 with bitsandbytes' bnb_4bit_compute_dtype=bfloat16 semantics.
#ifndef RLHF_NN_NF4_H
#define RLHF_NN_NF4_H

#include <stdint.h>

#include "base/error.h"

#define NF4_BLOCKSIZE 64      // bitsandbytes quantize_4bit default blocksize (Linear4bit, QLoRA)
#define NF4_NESTED_BLOCKSIZE 256 // quantize_4bit(compress_statistics=True) quantizes absmax in blocks of 256

typedef enum { NF4_QUANT_NF4, NF4_QUANT_FP4 } nf4_quant_type;

// "nf4" / "fp4" (--bnb_4bit_quant_type); anything else is RLHF_EINPUT naming the flag.
rlhf_status nf4_quant_type_parse(const char *name, nf4_quant_type *out, rlhf_err *err);

// The 16 dequantization values indexed by the 4-bit code (bitsandbytes get_4bit_type: NF4 sorted
// from -1 to 1; FP4 in bit-pattern order, divided by its maximum 12).
const float *nf4_code(nf4_quant_type t);
// The 4-bit code of x (already scaled into [-1, 1]): the nearest code value, ties to the smaller
// value, i.e. torch.bucketize over the midpoints (bitsandbytes' CPU backend; same decisions as the
// CUDA kernels' `x > midpoint` trees). FP4 keeps the sign bit from x < 0, as the CUDA kernel does;
// bitsandbytes' CPU backend (argsort over a table holding +0 and -0) may pick the other zero code
// for |x| < 0.0026, which dequantizes to the same 0. Checked against a torch re-statement of that
// backend on 100k values: every NF4 nibble and absmax equal; FP4 equal except those zero signs.
uint8_t nf4_encode(nf4_quant_type t, float x);

// bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256 sorted
// values in [-1, 1] used to quantize the block scales.
void quant8_dynamic_map(float code[256]);
// Index of the nearest value of a sorted 256-entry code to x (torch.bucketize over midpoints).
uint8_t quant8_encode(const float code[256], float x);

typedef struct {
    nf4_quant_type type;
    int64_t n;            // number of values (OC * C for a linear weight)
    int64_t nblocks;      // ceil(n / 64)
    uint8_t *packed;      // (n + 1) / 2 bytes; value 2i in the high nibble of byte i
    int double_quant;
    float *absmax;        // (nblocks) fp32 block scales; NULL when double_quant
    uint8_t *absmax_q;    // (nblocks) 8-bit codes of absmax - offset; double_quant only
    float *absmax2;       // (ceil(nblocks / 256)) scales of the absmax blocks; double_quant only
    float offset;         // mean of the fp32 absmax, subtracted before its quantization
    float dyn_code[256];  // quant8_dynamic_map, kept with the tensor like QuantState.state2.code
} nf4_tensor;

// Quantizes w: (n) into q (allocations owned by q; free with nf4_free). Non-finite weights are
// RLHF_EINPUT naming `what` and the index.
rlhf_status nf4_quantize(nf4_tensor *q, const float *w, int64_t n, nf4_quant_type type, int double_quant,
                         const char *what, rlhf_err *err);
void nf4_free(nf4_tensor *q);
// Bytes held by the quantized tensor (for memory reports).
int64_t nf4_bytes(const nf4_tensor *q);
// fp32 scale of block b (dequantizing the double-quantized scale when needed).
float nf4_block_scale(const nf4_tensor *q, int64_t b);
// out: (count) = dequantized values start .. start + count - 1 (any range, blocks need not align).
void nf4_dequantize(float *out, const nf4_tensor *q, int64_t start, int64_t count);

// ---- quantized linear layer --------------------------------------------------------------------
typedef enum { NF4_COMPUTE_F32, NF4_COMPUTE_BF16 } nf4_compute;
// "float32" / "bfloat16" (--bnb_4bit_compute_dtype).
rlhf_status nf4_compute_parse(const char *name, nf4_compute *out, rlhf_err *err);
// 1 when this build runs the bf16 path with AVX-512 BF16 instructions (else a portable path that
// rounds the operands to bf16 and multiplies in fp32, which gives the same products).
int nf4_bf16_native(void);

// out: (N, OC) = inp: (N, C) @ dequant(w)^T + bias, w: (OC, C) quantized, bias: (OC) or NULL.
// BF16 compute follows bitsandbytes Linear4bit(compute_dtype=bfloat16): input, dequantized weight
// and bias rounded to bf16, products accumulated in fp32, output rounded to bf16 (stored as fp32).
rlhf_status nf4_linear_forward(float *out, const float *inp, const nf4_tensor *w, const float *bias, int N,
                               int C, int OC, nf4_compute compute, rlhf_err *err);
// dinp: (N, C) += dout: (N, OC) @ dequant(w). The base weight is frozen: no weight gradient. With
// BF16 compute, dout and w are rounded to bf16 and the product to bf16 before accumulating.
rlhf_status nf4_linear_backward(float *dinp, const float *dout, const nf4_tensor *w, int N, int C, int OC,
                                nf4_compute compute, rlhf_err *err);

// Round-to-nearest-even fp32 -> bf16 -> fp32 (NaN stays NaN), as torch's .to(torch.bfloat16).
float bf16_round(float x);

#endif
