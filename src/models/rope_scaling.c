// rope_scaling -> rotary frequencies, as transformers' modeling_rope_utils computes them in fp32:
//   linear : inv_freq / factor (position interpolation)
//   llama3 : Llama 3.1's per-frequency rule: wavelengths longer than original_max / low_freq_factor are
//            divided by factor, shorter than original_max / high_freq_factor kept, and the band between
//            blended by smooth = (original_max / wavelen - low) / (high - low).
#include "models/rope_scaling.h"

#include <math.h>
#include <string.h>

#define ROPE_PI 3.14159265358979323846

static rlhf_status number_field(const cJSON *s, const char *key, int required, double def, double *out, rlhf_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return rlhf_fail(err, RLHF_EINPUT, "config.json: rope_scaling.%s is required", key);
        *out = def;
        return RLHF_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return rlhf_fail(err, RLHF_EINPUT, "config.json: rope_scaling.%s must be a number", key);
    *out = v->valuedouble;
    return RLHF_OK;
}

rlhf_status rope_scaling_from_config(const cJSON *config, int rot_dim, float theta, rope_freqs *out, rlhf_err *err) {
    if (rot_dim / 2 > ROPE_MAX_HALF)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: rotary dimension %d is larger than the supported %d", rot_dim,
                         2 * ROPE_MAX_HALF);
    rope_freqs_default(out, rot_dim, theta);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(config, "rope_scaling");
    if (!s || cJSON_IsNull(s)) return RLHF_OK;
    if (!cJSON_IsObject(s)) return rlhf_fail(err, RLHF_EINPUT, "config.json: rope_scaling must be an object or null");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "rope_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(s, "type");  // the older key
    if (!cJSON_IsString(t)) return rlhf_fail(err, RLHF_EINPUT, "config.json: rope_scaling needs a string \"rope_type\"");
    const char *type = t->valuestring;
    if (!strcmp(type, "default")) return RLHF_OK;
    double factor;
    if (!strcmp(type, "linear")) {
        RLHF_TRY(number_field(s, "factor", 1, 0, &factor, err));
        if (factor < 1) return rlhf_fail(err, RLHF_EINPUT, "config.json: rope_scaling.factor must be >= 1, got %g", factor);
        for (int i = 0; i < out->half; i++) out->inv_freq[i] /= (float)factor;
        return RLHF_OK;
    }
    if (!strcmp(type, "llama3")) {
        double low, high, old_len;
        RLHF_TRY(number_field(s, "factor", 1, 0, &factor, err));
        RLHF_TRY(number_field(s, "low_freq_factor", 1, 0, &low, err));
        RLHF_TRY(number_field(s, "high_freq_factor", 1, 0, &high, err));
        RLHF_TRY(number_field(s, "original_max_position_embeddings", 1, 0, &old_len, err));
        if (factor < 1 || low <= 0 || high <= low || old_len <= 0)
            return rlhf_fail(err, RLHF_EINPUT,
                             "config.json: rope_scaling (llama3) needs factor >= 1 and 0 < low_freq_factor < "
                             "high_freq_factor and original_max_position_embeddings > 0");
        // torch computes in fp32 with the Python scalars cast to the tensor's dtype.
        const float f = (float)factor, lo = (float)low, hi = (float)high, old = (float)old_len;
        const float low_wavelen = (float)(old_len / low), high_wavelen = (float)(old_len / high);
        const float two_pi = (float)(2.0 * ROPE_PI);
        for (int i = 0; i < out->half; i++) {
            float inv = out->inv_freq[i];
            float wavelen = two_pi / inv;
            float scaled = wavelen > low_wavelen ? inv / f : inv;
            float smooth = (old / wavelen - lo) / (hi - lo);
            float smoothed = (1.0f - smooth) * scaled / f + smooth * scaled;
            int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
            out->inv_freq[i] = medium ? smoothed : scaled;
        }
        return RLHF_OK;
    }
    if (!strcmp(type, "dynamic"))
        return rlhf_fail(err, RLHF_EINPUT,
                         "config.json: rope_scaling type 'dynamic' is not supported (its frequencies change with "
                         "the longest sequence seen; supported: default, linear, llama3)");
    return rlhf_fail(err, RLHF_EINPUT, "config.json: rope_scaling type '%s' is not supported (supported: default, linear, "
                     "llama3)", type);
}
