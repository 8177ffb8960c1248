// The PPO value head: forward is hidden @ w + b, backward matches finite differences, and the
// tensors round-trip through safetensors under TRL's names.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/value_head.h"
#include "testutil.h"

#define N 5
#define C 7

static double objective(const value_head *v, const float *h, const float *g) {
    float out[N];
    value_head_forward(v, out, h, N);
    double s = 0;
    for (int i = 0; i < N; i++) s += out[i] * g[i];
    return s;
}

int main(void) {
    rlhf_err err;
    value_head v;
    CHECK(value_head_init(&v, C, 0.2f, 3, &err) == RLHF_OK, "%s", err.msg);
    CHECK(v.params[C] == 0.0f, "bias starts at zero");
    v.params[C] = 0.3f;
    float h[N * C], g[N], out[N];
    for (int i = 0; i < N * C; i++) h[i] = sinf(0.7f * i);
    for (int i = 0; i < N; i++) g[i] = cosf(1.3f * i);
    value_head_forward(&v, out, h, N);
    for (int n = 0; n < N; n++) {
        double want = v.params[C];
        for (int c = 0; c < C; c++) want += h[n * C + c] * v.params[c];
        CHECK(fabs(out[n] - want) < 1e-5, "forward row %d: %g vs %g", n, out[n], want);
    }
    float dh[N * C] = {0};
    value_head_backward(&v, dh, g, h, N);
    const double eps = 1e-2;
    for (int i = 0; i <= C; i++) {  // parameters (weights and bias)
        float keep = v.params[i];
        v.params[i] = keep + eps;
        double up = objective(&v, h, g);
        v.params[i] = keep - eps;
        double down = objective(&v, h, g);
        v.params[i] = keep;
        CHECK(fabs((up - down) / (2 * eps) - v.grads[i]) < 1e-3, "dparam %d", i);
    }
    for (int i = 0; i < N * C; i += 3) {
        float keep = h[i];
        h[i] = keep + eps;
        double up = objective(&v, h, g);
        h[i] = keep - eps;
        double down = objective(&v, h, g);
        h[i] = keep;
        CHECK(fabs((up - down) / (2 * eps) - dh[i]) < 1e-3, "dhidden %d", i);
    }
    char path[] = "/tmp/rlhf_vhead_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    st_write_tensor t[2];
    value_head_tensors(&v, t);
    CHECK(st_write(path, t, 2, NULL, 0, &err) == RLHF_OK, "%s", err.msg);
    st_file f;
    value_head w;
    value_head_init(&w, C, 0.2f, 99, &err);
    int found = 0;
    CHECK(st_open(&f, path, &err) == RLHF_OK, "%s", err.msg);
    CHECK(value_head_load(&w, &f, &found, &err) == RLHF_OK && found, "load: %s", err.msg);
    CHECK(!memcmp(w.params, v.params, sizeof(float) * (C + 1)), "round trip");
    CHECK(st_find(&f, "v_head.summary.weight")->shape[1] == C, "TRL shape [1, C]");
    st_close(&f);
    unlink(path);
    value_head_free(&w);
    value_head_free(&v);
    return tu_finish("models_value_head");
}
