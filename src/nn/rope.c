// Rotary position embeddings, rotated in place, in HF's two layouts: rotate_half (Llama, Mistral,
// GPT-NeoX; pairs (i, i + rot_dim/2)) and GPT-J's interleaved pairs (2i, 2i + 1). Angles follow HF's
// fp32 computation: inv_freq = 1 / theta^(2i / rot_dim), angle = float(pos) * inv_freq in float.
#include <math.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

// Rotates x: (B, T, H, D) by sign * angle (sign -1 for the backward).
static void rope_rotate(float *x, const int32_t *pos, int B, int T, int H, int D, int rot_dim, float theta,
                        rope_layout layout, float sign) {
    const int half = rot_dim / 2;
    const int64_t BT = (int64_t)B * T;
#pragma omp parallel for if (BT * H * rot_dim > NN_PARALLEL_MIN)
    for (int64_t bt = 0; bt < BT; bt++) {
        float p = (float)pos[bt];
        float *row = x + bt * H * D;
        for (int i = 0; i < half; i++) {
            // torch: arange(0, dim, 2).float() / dim, base ** that, 1.0 / that, all in fp32
            float expo = (float)(2 * i) / (float)rot_dim;
            float inv_freq = 1.0f / powf(theta, expo);
            float ang = p * inv_freq;
            float c = cosf(ang), sn = sign * sinf(ang);
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

void rope_forward(float *x, const int32_t *pos, int B, int T, int H, int D, int rot_dim, float theta,
                  rope_layout layout) {
    rope_rotate(x, pos, B, T, H, D, rot_dim, theta, layout, 1.0f);
}

void rope_backward(float *dx, const int32_t *pos, int B, int T, int H, int D, int rot_dim, float theta,
                   rope_layout layout) {
    rope_rotate(dx, pos, B, T, H, D, rot_dim, theta, layout, -1.0f);
}
