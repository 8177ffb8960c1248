// Rotary position embeddings, rotated in place, in HF's two layouts: rotate_half (Llama, Mistral,
// GPT-NeoX; pairs (i, i + rot_dim/2)) and GPT-J's interleaved pairs (2i, 2i + 1). Angles follow HF's
// fp32 computation: inv_freq = 1 / theta^(2i / rot_dim), angle = float(pos) * inv_freq in float; the
// rope_scaling variants only change inv_freq (and YaRN's attention_factor on cos and sin).
#include <math.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

void rope_freqs_default(rope_freqs *f, int rot_dim, float theta) {
    f->half = rot_dim / 2 < ROPE_MAX_HALF ? rot_dim / 2 : ROPE_MAX_HALF;
    f->attention_factor = 1.0f;
    for (int i = 0; i < f->half; i++) {
        // torch: arange(0, dim, 2).float() / dim, base ** that, 1.0 / that, all in fp32
        float expo = (float)(2 * i) / (float)rot_dim;
        f->inv_freq[i] = 1.0f / powf(theta, expo);
    }
}

// Rotates x: (B, T, H, D) by sign * angle (sign -1 for the backward); the attention factor scales
// both directions (the op is factor * rotation, whose transpose is factor * the inverse rotation).
static void rope_rotate(float *x, const int32_t *pos, int B, int T, int H, int D, const rope_freqs *f,
                        rope_layout layout, float sign) {
    const int half = f->half;
    const int64_t BT = (int64_t)B * T;
    const float af = f->attention_factor;
#pragma omp parallel for if (BT * H * half * 2 > NN_PARALLEL_MIN)
    for (int64_t bt = 0; bt < BT; bt++) {
        float p = (float)pos[bt];
        float *row = x + bt * H * D;
        for (int i = 0; i < half; i++) {
            float ang = p * f->inv_freq[i];
            float c = cosf(ang), sn = sign * sinf(ang);
            if (af != 1.0f) c *= af, sn *= af;
            int a = layout == ROPE_HALF ? i : 2 * i;
            int b = layout == ROPE_HALF ? i + half : 2 * i + 1;
            for (int h = 0; h < H; h++) {
                float *xh = row + (int64_t)h * D;
                float x1 = xh[a], x2 = xh[b];
                xh[a] = x1 * c - x2 * sn;
                xh[b] = x2 * c + x1 * sn;
            }
        }
    }
}

void rope_forward_freqs(float *x, const int32_t *pos, int B, int T, int H, int D, int rot_dim, const rope_freqs *f,
                        rope_layout layout) {
    (void)rot_dim;  // f->half = rot_dim / 2
    rope_rotate(x, pos, B, T, H, D, f, layout, 1.0f);
}

void rope_backward_freqs(float *dx, const int32_t *pos, int B, int T, int H, int D, int rot_dim, const rope_freqs *f,
                         rope_layout layout) {
    (void)rot_dim;
    rope_rotate(dx, pos, B, T, H, D, f, layout, -1.0f);
}

void rope_forward(float *x, const int32_t *pos, int B, int T, int H, int D, int rot_dim, float theta,
                  rope_layout layout) {
    rope_freqs f;
    rope_freqs_default(&f, rot_dim, theta);
    rope_rotate(x, pos, B, T, H, D, &f, layout, 1.0f);
}

void rope_backward(float *dx, const int32_t *pos, int B, int T, int H, int D, int rot_dim, float theta,
                   rope_layout layout) {
    rope_freqs f;
    rope_freqs_default(&f, rot_dim, theta);
    rope_rotate(dx, pos, B, T, H, D, &f, layout, -1.0f);
}
