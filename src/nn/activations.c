// Elementwise activations and their derivatives, matching torch / HF definitions:
// gelu = 0.5 x (1 + erf(x / sqrt 2)) (nn.GELU()), gelu_new / gelu_pytorch_tanh =
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), silu = x * sigmoid(x), SwiGLU = silu(gate) * up,
// plus the residual add. Loops are plain so they vectorise (exp and erf are nn_internal.h's
// vectorisable versions, as torch's own vectorised kernels); big ones are split over OpenMP threads.
// gelu_new is evaluated as x * sigmoid(2u), the same function as 0.5 x (1 + tanh(u)) with one exp.
#include <math.h>
#include <string.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

#define GELU_TANH_COEF 0.044715f                   // HF NewGELUActivation
#define SQRT_2_OVER_PI 0.7978845608028654f         // sqrt(2 / pi)
#define INV_SQRT_2 0.7071067811865476f             // 1 / sqrt(2)
#define INV_SQRT_2PI 0.3989422804014327f           // 1 / sqrt(2 pi)

// The condition is for the parallel construct only: a plain if clause on "parallel for simd" also applies
// to the simd construct (OpenMP 5), and GCC then ran every loop at or below NN_PARALLEL_MIN elements (all
// of decoding's) scalar and the bigger ones ~20x slower than vectorised.
#define PAR_IF if (parallel : n > NN_PARALLEL_MIN)

void gelu_erf_forward(float *out, const float *inp, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * (1.0f + nn_erff(inp[i] * INV_SQRT_2));
}

// d/dx = Phi(x) + x * phi(x)
void gelu_erf_backward(float *dinp, const float *dout, const float *inp, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + nn_erff(x * INV_SQRT_2));
        float pdf = INV_SQRT_2PI * nn_expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void gelu_tanh_forward(float *out, const float *inp, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x);
        out[i] = x / (1.0f + nn_expf(-2.0f * u));   // 0.5 (1 + tanh u) = sigmoid(2u)
    }
}

void gelu_tanh_backward(float *dinp, const float *dout, const float *inp, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x);
        float s = 1.0f / (1.0f + nn_expf(-2.0f * u));   // (1 + tanh u) / 2; 1 - tanh^2 u = 4 s (1 - s)
        float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_COEF * x * x);
        dinp[i] += dout[i] * (s + 2.0f * x * s * (1.0f - s) * du);
    }
}

void relu_forward(float *out, const float *inp, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *inp, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

void silu_forward(float *out, const float *inp, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) out[i] = inp[i] / (1.0f + nn_expf(-inp[i]));
}

// d/dx x s(x) = s (1 + x (1 - s))
void silu_backward(float *dinp, const float *dout, const float *inp, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i], s = 1.0f / (1.0f + nn_expf(-x));
        dinp[i] += dout[i] * s * (1.0f + x * (1.0f - s));
    }
}

void tanh_forward(float *out, const float *inp, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

void tanh_backward(float *dinp, const float *dout, const float *out, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}

void swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + nn_expf(-gate[i])) * up[i];
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], s = 1.0f / (1.0f + nn_expf(-g));
        if (dgate) dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        if (dup) dup[i] += dout[i] * g * s;
    }
}

// gelu_tanh(g) * up, with gelu_tanh as gelu_tanh_forward evaluates it
void geglu_forward(float *out, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) {
        float x = gate[i];
        float u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x);
        out[i] = x / (1.0f + nn_expf(-2.0f * u)) * up[i];
    }
}

void geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) {
        float x = gate[i];
        float u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x);
        float s = 1.0f / (1.0f + nn_expf(-2.0f * u));
        float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_COEF * x * x);
        if (dgate) dgate[i] += dout[i] * up[i] * (s + 2.0f * x * s * (1.0f - s) * du);
        if (dup) dup[i] += dout[i] * x * s;
    }
}

// HF order: inp / cap, tanh, * cap, each rounded to fp32
void softcap_forward(float *out, const float *inp, float cap, int64_t n) {
#pragma omp parallel for PAR_IF
    for (int64_t i = 0; i < n; i++) out[i] = tanhf(inp[i] / cap) * cap;
}

void softcap_backward(float *dinp, const float *dout, const float *out, float cap, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) {
        float t = out[i] / cap;
        dinp[i] += dout[i] * (1.0f - t * t);
    }
}

activation_kind activation_from_name(const char *name) {
    if (!name) return ACT_UNKNOWN;
    if (!strcmp(name, "gelu")) return ACT_GELU_ERF;
    if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh")) return ACT_GELU_TANH;
    if (!strcmp(name, "relu")) return ACT_RELU;
    if (!strcmp(name, "silu") || !strcmp(name, "swish")) return ACT_SILU;
    if (!strcmp(name, "tanh")) return ACT_TANH;
    return ACT_UNKNOWN;
}

void activation_forward(activation_kind k, float *out, const float *inp, int64_t n) {
    switch (k) {
    case ACT_GELU_ERF: gelu_erf_forward(out, inp, n); break;
    case ACT_GELU_TANH: gelu_tanh_forward(out, inp, n); break;
    case ACT_RELU: relu_forward(out, inp, n); break;
    case ACT_SILU: silu_forward(out, inp, n); break;
    case ACT_TANH: tanh_forward(out, inp, n); break;
    case ACT_UNKNOWN: break;   // rejected when the config is read
    }
}

void activation_backward(activation_kind k, float *dinp, const float *dout, const float *inp, const float *out,
                         int64_t n) {
    switch (k) {
    case ACT_GELU_ERF: gelu_erf_backward(dinp, dout, inp, n); break;
    case ACT_GELU_TANH: gelu_tanh_backward(dinp, dout, inp, n); break;
    case ACT_RELU: relu_backward(dinp, dout, inp, n); break;
    case ACT_SILU: silu_backward(dinp, dout, inp, n); break;
    case ACT_TANH: tanh_backward(dinp, dout, out, n); break;
    case ACT_UNKNOWN: break;
    }
}

int activation_has_inplace_backward(activation_kind k) { return k == ACT_GELU_ERF || k == ACT_GELU_TANH; }

// The derivative expressions are gelu_erf_backward's and gelu_tanh_backward's, term for term.
int activation_backward_inplace(activation_kind k, float *d, const float *inp, int64_t n) {
    if (k == ACT_GELU_ERF) {
#pragma omp parallel for simd PAR_IF
        for (int64_t i = 0; i < n; i++) {
            float x = inp[i];
            float cdf = 0.5f * (1.0f + nn_erff(x * INV_SQRT_2));
            float pdf = INV_SQRT_2PI * nn_expf(-0.5f * x * x);
            d[i] = d[i] * (cdf + x * pdf);
        }
        return 1;
    }
    if (k == ACT_GELU_TANH) {
#pragma omp parallel for simd PAR_IF
        for (int64_t i = 0; i < n; i++) {
            float x = inp[i];
            float u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x);
            float s = 1.0f / (1.0f + nn_expf(-2.0f * u));
            float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_COEF * x * x);
            d[i] = d[i] * (s + 2.0f * x * s * (1.0f - s) * du);
        }
        return 1;
    }
    return 0;
}

void add_forward(float *out, const float *a, const float *b, int64_t n) {
#pragma omp parallel for simd PAR_IF
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
