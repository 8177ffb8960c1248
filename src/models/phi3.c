// Phi-3 (Phi3ForCausalLM, Phi3ForSequenceClassification) on the shared decoder, as modeling_phi3.py
// (transformers 4.44) computes it: Llama's block with the attention input projection fused into
// qkv_proj (output [q (heads * head_dim) | k (kv_heads * head_dim) | v]) and the MLP's gate and up
// projections fused into gate_up_proj (output [gate | up], mlp = down(silu(gate) * up)), no biases,
// resid_pdrop dropout on both branch outputs, an untied lm_head unless tie_word_embeddings, and a word
// embedding with padding_idx = pad_token_id.
// rope_scaling: null, or LongRoPE ("longrope"; Phi3Config renames the older "su" and "yarn" to it) as
// Phi-3-mini-128k / Phi-3.5 carry: inv_freq = 1 / (factor[i] * theta^(2i/d)) with short_factor, or
// long_factor for a forward whose largest position id is >= original_max_position_embeddings (HF picks
// per forward call, so a KV-cache decode switches once it passes that length), and cos / sin scaled by
// sqrt(1 + ln(max_position_embeddings / original) / ln(original)) when the ratio is above 1.
// sliding_window: transformers 4.44.2 applies it only under flash-attention, later versions in every
// attention path; we apply it (i - window < j <= i) whenever it is set (Phi-3-mini-4k: 2047, so only
// longer sequences see it).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/json_util.h"
#include "models/decoder.h"

// Phi3Config defaults (transformers 4.44).
#define PHI3_VOCAB 32064
#define PHI3_HIDDEN 3072
#define PHI3_INTERMEDIATE 8192
#define PHI3_LAYERS 32
#define PHI3_HEADS 32
#define PHI3_MAX_POS 4096
#define PHI3_RMS_EPS 1e-5
#define PHI3_ROPE_THETA 10000.0
#define PHI3_BOS 1
#define PHI3_EOS 32000

// One LongRoPE factor list (rope_scaling.<key>): exactly half of the head size, positive numbers.
static rlhf_status factor_list(const cJSON *s, const char *key, int half, float *out, rlhf_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != half)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: rope_scaling.%s must be a list of %d numbers (head_dim / 2)",
                         key, half);
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0))
            return rlhf_fail(err, RLHF_EINPUT, "config.json: rope_scaling.%s[%d] must be a positive number", key, i);
        out[i++] = (float)v->valuedouble;
    }
    return RLHF_OK;
}

// Fills c->rope (and c->rope_long) from rope_theta and rope_scaling.
static rlhf_status phi3_rope(const cJSON *j, decoder_cfg *c, int HD, float theta, int npos, rlhf_err *err) {
    if (HD / 2 > ROPE_MAX_HALF)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: head size %d is larger than the supported %d", HD,
                         2 * ROPE_MAX_HALF);
    rope_freqs_default(&c->rope, HD, theta);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (!s || cJSON_IsNull(s)) return RLHF_OK;
    if (!cJSON_IsObject(s)) return rlhf_fail(err, RLHF_EINPUT, "config.json: rope_scaling must be an object or null");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(s, "rope_type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "(missing)";
    if (strcmp(type, "longrope") && strcmp(type, "su") && strcmp(type, "yarn"))
        return rlhf_fail(err, RLHF_EINPUT,
                         "config.json: rope_scaling type '%s' is not supported for phi3 (supported: longrope, su, yarn "
                         "as Phi3Config maps them to longrope)", type);
    int orig;
    RLHF_TRY(decoder_cfg_int(j, "original_max_position_embeddings", PHI3_MAX_POS, 1, &orig, err));
    int half = HD / 2;
    float shortf[ROPE_MAX_HALF], longf[ROPE_MAX_HALF];
    RLHF_TRY(factor_list(s, "short_factor", half, shortf, err));
    RLHF_TRY(factor_list(s, "long_factor", half, longf, err));
    double scale = (double)npos / orig;
    float sf = scale <= 1.0 ? 1.0f : (float)sqrt(1.0 + log(scale) / log((double)orig));
    c->rope_long = c->rope;
    for (int i = 0; i < half; i++) {
        float base = powf(theta, (float)(2 * i) / (float)HD);  // torch: base ** (arange(0, d, 2).float() / d)
        c->rope.inv_freq[i] = 1.0f / (shortf[i] * base);
        c->rope_long.inv_freq[i] = 1.0f / (longf[i] * base);
    }
    c->rope.attention_factor = c->rope_long.attention_factor = sf;
    c->rope_long_from = orig;
    return RLHF_OK;
}

static rlhf_status phi3_configure(model *m, rlhf_err *err) {
    const cJSON *j = m->config_json;
    int V, C, L, NH, NKV, I, npos, tie, window = 0;
    float eps, theta, att_p, resid_p, embd_p, partial;
    RLHF_TRY(decoder_cfg_int(j, "vocab_size", PHI3_VOCAB, 1, &V, err));
    RLHF_TRY(decoder_cfg_int(j, "hidden_size", PHI3_HIDDEN, 1, &C, err));
    RLHF_TRY(decoder_cfg_int(j, "intermediate_size", PHI3_INTERMEDIATE, 1, &I, err));
    RLHF_TRY(decoder_cfg_int(j, "num_hidden_layers", PHI3_LAYERS, 1, &L, err));
    RLHF_TRY(decoder_cfg_int(j, "num_attention_heads", PHI3_HEADS, 1, &NH, err));
    RLHF_TRY(decoder_cfg_int(j, "num_key_value_heads", NH, 1, &NKV, err));
    RLHF_TRY(decoder_cfg_int(j, "max_position_embeddings", PHI3_MAX_POS, 1, &npos, err));
    RLHF_TRY(decoder_cfg_float(j, "rms_norm_eps", PHI3_RMS_EPS, &eps, err));
    RLHF_TRY(decoder_cfg_float(j, "rope_theta", PHI3_ROPE_THETA, &theta, err));
    RLHF_TRY(decoder_cfg_float(j, "attention_dropout", 0.0, &att_p, err));
    RLHF_TRY(decoder_cfg_float(j, "resid_pdrop", 0.0, &resid_p, err));
    RLHF_TRY(decoder_cfg_float(j, "embd_pdrop", 0.0, &embd_p, err));
    RLHF_TRY(decoder_cfg_float(j, "partial_rotary_factor", 1.0, &partial, err));
    RLHF_TRY(json_get_bool(j, "tie_word_embeddings", 0, &tie, "config.json", err));
    if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "sliding_window")))
        RLHF_TRY(decoder_cfg_int(j, "sliding_window", 0, 0, &window, err));
    if (partial != 1.0f)
        return rlhf_fail(err, RLHF_EINPUT,
                         "config.json: partial_rotary_factor %g is not supported for phi3 (expected 1.0)", partial);
    if (C % NH)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                         C, NH);
    int HD = C / NH;
    if (NH % NKV)
        return rlhf_fail(err, RLHF_EINPUT,
                         "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d", NH, NKV);
    if (HD % 2) return rlhf_fail(err, RLHF_EINPUT, "config.json: head size %d must be even for rotary embeddings", HD);
    const char *act_name = json_get_string(j, "hidden_act", "silu");
    if (activation_from_name(act_name) != ACT_SILU)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: hidden_act '%s' is not supported (expected silu)", act_name);

    RLHF_TRY(decoder_state_new(m, L, err));
    decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    RLHF_TRY(phi3_rope(j, c, HD, theta, npos, err));
    c->C = C, c->NH = NH, c->NKV = NKV, c->HD = HD, c->I = I, c->V = V;
    c->norm = DEC_NORM_RMS, c->norm_eps = eps;
    c->qkv = DEC_QKV_FUSED;
    c->mlp = DEC_MLP_GATED, c->act = ACT_SILU, c->fused_gate_up = 1;
    c->rot_dim = HD;
    c->window = window;
    c->scale_attn_weights = 1;
    c->attn_pdrop = att_p, c->resid_pdrop = resid_p, c->embd_pdrop = embd_p;
    decoder_fill_model_config(m, PHI3_BOS, PHI3_EOS);
    m->cfg.max_positions = npos;
    int pad = m->cfg.pad_token_id >= 0 && m->cfg.pad_token_id < V ? m->cfg.pad_token_id : -1;
    c->padding_idx = pad;

    char n[MODEL_NAME_MAX];
    int QD = NH * HD, KD = NKV * HD;
    RLHF_TRY(decoder_add(m, &c->wte, "model.embed_tokens.weight", 2, V, C, INIT_NORMAL, 0, 0, pad, err));
    for (int l = 0; l < L; l++) {
        dec_layer_offsets *o = &c->layers[l];
#define ADD(off, suffix, nd, d0, d1, init, nodecay)                                  \
    do {                                                                         \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                  \
        RLHF_TRY(decoder_add(m, &o->off, n, nd, d0, d1, init, nodecay, 0, -1, err)); \
    } while (0)
        ADD(o_w, "self_attn.o_proj.weight", 2, C, QD, INIT_NORMAL, 0);
        ADD(qkv_w, "self_attn.qkv_proj.weight", 2, QD + 2 * KD, C, INIT_NORMAL, 0);
        ADD(fc_w, "mlp.gate_up_proj.weight", 2, 2 * I, C, INIT_NORMAL, 0);
        ADD(down_w, "mlp.down_proj.weight", 2, C, I, INIT_NORMAL, 0);
        ADD(ln1_w, "input_layernorm.weight", 1, C, 0, INIT_ONES, 1);
        ADD(ln2_w, "post_attention_layernorm.weight", 1, C, 0, INIT_ONES, 1);
#undef ADD
    }
    RLHF_TRY(decoder_add(m, &c->lnf_w, "model.norm.weight", 1, C, 0, INIT_ONES, 1, 0, -1, err));
    if (m->head == HEAD_LM) {
        if (tie)
            c->head = c->wte;
        else
            RLHF_TRY(decoder_add(m, &c->head, "lm_head.weight", 2, V, C, INIT_NORMAL, 0, 1, -1, err));
    } else {
        RLHF_TRY(decoder_add(m, &c->head, "score.weight", 2, m->cfg.num_labels, C, INIT_NORMAL, 0, 1, -1, err));
    }
    return RLHF_OK;
}

static const char *const phi3_known[] = {"Phi3Model", "Phi3ForCausalLM", "Phi3ForSequenceClassification", NULL};

const model_family phi3_family = {
    .model_type = "phi3",
    .seqcls_architecture = "Phi3ForSequenceClassification",
    .lm_architecture = "Phi3ForCausalLM",
    .base_prefix = "model.",
    .configure = phi3_configure,
    .forward = decoder_forward,
    .backward = decoder_backward,
    .destroy = decoder_destroy,
    .known_architectures = phi3_known,
    .decode = decoder_decode,
};
