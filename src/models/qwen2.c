// Qwen2 / Qwen2.5 (Qwen2ForCausalLM, Qwen2ForSequenceClassification) on the shared decoder: Llama's
// block (RMSNorm, rotate-half RoPE with rope_theta, SwiGLU, grouped-query attention) with biases on
// q_proj / k_proj / v_proj (none on o_proj or the MLP), head_dim = hidden_size / num_attention_heads,
// an lm_head tied to the embeddings when tie_word_embeddings (Qwen2.5-0.5B / 1.5B), and a word embedding
// with padding_idx = pad_token_id.
// Sliding window: transformers 4.44.2 applies Qwen2's window only under flash-attention (eager and sdpa
// ignore it) and later versions in every attention path; both put it on the layers with index >=
// max_window_layers, and only when use_sliding_window is true. We do the same in training, scoring and
// KV-cache decoding (released Qwen2 / Qwen2.5 configs set use_sliding_window false, so nothing changes).
#include <stdio.h>
#include <string.h>

#include "io/json_util.h"
#include "models/decoder.h"
#include "models/rope_scaling.h"

// Qwen2Config defaults (transformers 4.44).
#define QWEN2_VOCAB 151936
#define QWEN2_HIDDEN 4096
#define QWEN2_INTERMEDIATE 22016
#define QWEN2_LAYERS 32
#define QWEN2_HEADS 32
#define QWEN2_MAX_POS 32768
#define QWEN2_WINDOW 4096
#define QWEN2_MAX_WINDOW_LAYERS 28
#define QWEN2_RMS_EPS 1e-6
#define QWEN2_ROPE_THETA 10000.0

static rlhf_status qwen2_configure(model *m, rlhf_err *err) {
    const cJSON *j = m->config_json;
    int V, C, L, NH, NKV, I, npos, use_window, window = 0, window_from = 0, tie;
    float eps, theta, att_p;
    RLHF_TRY(decoder_cfg_int(j, "vocab_size", QWEN2_VOCAB, 1, &V, err));
    RLHF_TRY(decoder_cfg_int(j, "hidden_size", QWEN2_HIDDEN, 1, &C, err));
    RLHF_TRY(decoder_cfg_int(j, "intermediate_size", QWEN2_INTERMEDIATE, 1, &I, err));
    RLHF_TRY(decoder_cfg_int(j, "num_hidden_layers", QWEN2_LAYERS, 1, &L, err));
    RLHF_TRY(decoder_cfg_int(j, "num_attention_heads", QWEN2_HEADS, 1, &NH, err));
    RLHF_TRY(decoder_cfg_int(j, "num_key_value_heads", NH, 1, &NKV, err));  // null -> num_attention_heads
    RLHF_TRY(decoder_cfg_int(j, "max_position_embeddings", QWEN2_MAX_POS, 1, &npos, err));
    RLHF_TRY(decoder_cfg_float(j, "rms_norm_eps", QWEN2_RMS_EPS, &eps, err));
    RLHF_TRY(decoder_cfg_float(j, "rope_theta", QWEN2_ROPE_THETA, &theta, err));
    RLHF_TRY(decoder_cfg_float(j, "attention_dropout", 0.0, &att_p, err));
    RLHF_TRY(json_get_bool(j, "tie_word_embeddings", 0, &tie, "config.json", err));
    RLHF_TRY(json_get_bool(j, "use_sliding_window", 0, &use_window, "config.json", err));
    if (use_window && !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "sliding_window"))) {
        RLHF_TRY(decoder_cfg_int(j, "sliding_window", QWEN2_WINDOW, 1, &window, err));
        RLHF_TRY(decoder_cfg_int(j, "max_window_layers", QWEN2_MAX_WINDOW_LAYERS, 0, &window_from, err));
    }
    if (C % NH)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                         C, NH);
    int HD = C / NH;
    if (NH % NKV)
        return rlhf_fail(err, RLHF_EINPUT,
                         "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d", NH, NKV);
    if (HD % 2) return rlhf_fail(err, RLHF_EINPUT, "config.json: head size %d must be even for rotary embeddings", HD);
    rope_freqs freqs;
    RLHF_TRY(rope_scaling_from_config(j, HD, theta, &freqs, err));
    const char *act_name = json_get_string(j, "hidden_act", "silu");
    if (activation_from_name(act_name) != ACT_SILU)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: hidden_act '%s' is not supported (expected silu)", act_name);

    RLHF_TRY(decoder_state_new(m, L, err));
    decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    c->C = C, c->NH = NH, c->NKV = NKV, c->HD = HD, c->I = I, c->V = V;
    c->norm = DEC_NORM_RMS, c->norm_eps = eps;
    c->qkv = DEC_QKV_SEPARATE;
    c->mlp = DEC_MLP_GATED, c->act = ACT_SILU;
    c->rot_dim = HD, c->rope = freqs;
    c->window = window, c->window_from = window_from;
    c->scale_attn_weights = 1;
    c->attn_pdrop = att_p;
    decoder_fill_model_config(m, -1, -1);  // Qwen2Config has no bos/eos defaults
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
        ADD(q_w, "self_attn.q_proj.weight", 2, QD, C, INIT_NORMAL, 0);
        ADD(q_b, "self_attn.q_proj.bias", 1, QD, 0, INIT_ZEROS, 1);
        ADD(k_w, "self_attn.k_proj.weight", 2, KD, C, INIT_NORMAL, 0);
        ADD(k_b, "self_attn.k_proj.bias", 1, KD, 0, INIT_ZEROS, 1);
        ADD(v_w, "self_attn.v_proj.weight", 2, KD, C, INIT_NORMAL, 0);
        ADD(v_b, "self_attn.v_proj.bias", 1, KD, 0, INIT_ZEROS, 1);
        ADD(o_w, "self_attn.o_proj.weight", 2, C, QD, INIT_NORMAL, 0);
        ADD(fc_w, "mlp.gate_proj.weight", 2, I, C, INIT_NORMAL, 0);
        ADD(up_w, "mlp.up_proj.weight", 2, I, C, INIT_NORMAL, 0);
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

static const char *const qwen2_known[] = {"Qwen2Model", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification", NULL};

const model_family qwen2_family = {
    .model_type = "qwen2",
    .seqcls_architecture = "Qwen2ForSequenceClassification",
    .lm_architecture = "Qwen2ForCausalLM",
    .base_prefix = "model.",
    .configure = qwen2_configure,
    .forward = decoder_forward,
    .backward = decoder_backward,
    .destroy = decoder_destroy,
    .known_architectures = qwen2_known,
    .decode = decoder_decode,
};
