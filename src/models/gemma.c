// Gemma and Gemma 2 (GemmaForCausalLM, GemmaForSequenceClassification, Gemma2ForCausalLM,
// Gemma2ForSequenceClassification) on the shared decoder, as modeling_gemma.py / modeling_gemma2.py
// (transformers 4.44) compute them:
//  - embeddings multiplied by sqrt(hidden_size), rounded to the model's dtype (fp32) first;
//  - RMSNorm scales by (1 + weight), weights stored as w (init 0);
//  - GeGLU MLP down(act(gate(x)) * up(x)) with act = config.hidden_activation (gelu_pytorch_tanh when
//    absent; Gemma ignores hidden_act), head_dim independent of hidden_size / num_attention_heads;
//  - word embedding with padding_idx = pad_token_id, lm_head tied unless tie_word_embeddings is false.
// Gemma 2 adds: sandwich norms (post_attention_layernorm on the attention output, pre_ / post_
// feedforward_layernorm around the MLP), attention scale query_pre_attn_scalar^-0.5, attention scores
// soft-capped c * tanh(s / c) (attn_logit_softcapping) before the mask, LM logits soft-capped by
// final_logit_softcapping (the causal LM only; Gemma2ForSequenceClassification does not), and a sliding
// window on the even layers (0, 2, ...): query i sees keys j with i - window < j <= i, in training,
// scoring and KV-cache decoding alike.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/json_util.h"
#include "models/decoder.h"
#include "models/rope_scaling.h"

// GemmaConfig / Gemma2Config defaults (transformers 4.44).
#define GEMMA_VOCAB 256000
#define GEMMA_HIDDEN 3072
#define GEMMA_INTERMEDIATE 24576
#define GEMMA_LAYERS 28
#define GEMMA_HEADS 16
#define GEMMA_HEAD_DIM 256
#define GEMMA_MAX_POS 8192
#define GEMMA_RMS_EPS 1e-6
#define GEMMA_ROPE_THETA 10000.0
#define GEMMA_BOS 2
#define GEMMA_EOS 1
#define GEMMA2_QUERY_PRE_ATTN_SCALAR 224.0
#define GEMMA2_WINDOW 4096
#define GEMMA2_ATTN_SOFTCAP 50.0
#define GEMMA2_FINAL_SOFTCAP 30.0

// A soft-cap field: the default when missing, 0 (off) when null, else a positive number.
static rlhf_status softcap_field(const cJSON *j, const char *key, double def, float *out, rlhf_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsNull(v)) {
        *out = 0;
        return RLHF_OK;
    }
    RLHF_TRY(decoder_cfg_float(j, key, def, out, err));
    if (!(*out > 0)) return rlhf_fail(err, RLHF_EINPUT, "config.json: field '%s' is %g, expected > 0 or null", key, *out);
    return RLHF_OK;
}

static rlhf_status gemma_like_configure(model *m, int v2, rlhf_err *err) {
    const cJSON *j = m->config_json;
    int V, C, L, NH, NKV, I, HD, npos, bias, tie, window = 0;
    float eps, theta, att_p, attn_cap = 0, final_cap = 0, qpas = 0;
    RLHF_TRY(decoder_cfg_int(j, "vocab_size", GEMMA_VOCAB, 1, &V, err));
    RLHF_TRY(decoder_cfg_int(j, "hidden_size", GEMMA_HIDDEN, 1, &C, err));
    RLHF_TRY(decoder_cfg_int(j, "intermediate_size", GEMMA_INTERMEDIATE, 1, &I, err));
    RLHF_TRY(decoder_cfg_int(j, "num_hidden_layers", GEMMA_LAYERS, 1, &L, err));
    RLHF_TRY(decoder_cfg_int(j, "num_attention_heads", GEMMA_HEADS, 1, &NH, err));
    RLHF_TRY(decoder_cfg_int(j, "num_key_value_heads", NH, 1, &NKV, err));
    RLHF_TRY(decoder_cfg_int(j, "head_dim", GEMMA_HEAD_DIM, 1, &HD, err));
    RLHF_TRY(decoder_cfg_int(j, "max_position_embeddings", GEMMA_MAX_POS, 1, &npos, err));
    RLHF_TRY(decoder_cfg_float(j, "rms_norm_eps", GEMMA_RMS_EPS, &eps, err));
    RLHF_TRY(decoder_cfg_float(j, "rope_theta", GEMMA_ROPE_THETA, &theta, err));
    RLHF_TRY(decoder_cfg_float(j, "attention_dropout", 0.0, &att_p, err));
    RLHF_TRY(json_get_bool(j, "attention_bias", 0, &bias, "config.json", err));
    RLHF_TRY(json_get_bool(j, "tie_word_embeddings", 1, &tie, "config.json", err));
    if (v2) {
        RLHF_TRY(decoder_cfg_float(j, "query_pre_attn_scalar", GEMMA2_QUERY_PRE_ATTN_SCALAR, &qpas, err));
        if (!(qpas > 0))
            return rlhf_fail(err, RLHF_EINPUT, "config.json: query_pre_attn_scalar is %g, expected > 0", qpas);
        RLHF_TRY(softcap_field(j, "attn_logit_softcapping", GEMMA2_ATTN_SOFTCAP, &attn_cap, err));
        RLHF_TRY(softcap_field(j, "final_logit_softcapping", GEMMA2_FINAL_SOFTCAP, &final_cap, err));
        if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "sliding_window")))
            RLHF_TRY(decoder_cfg_int(j, "sliding_window", GEMMA2_WINDOW, 1, &window, err));
    }
    if (NH % NKV)
        return rlhf_fail(err, RLHF_EINPUT,
                         "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d", NH, NKV);
    if (HD % 2) return rlhf_fail(err, RLHF_EINPUT, "config.json: head_dim %d must be even for rotary embeddings", HD);
    rope_freqs freqs;
    RLHF_TRY(rope_scaling_from_config(j, HD, theta, &freqs, err));
    const cJSON *ha = cJSON_GetObjectItemCaseSensitive(j, "hidden_activation");
    const char *act_name = cJSON_IsString(ha) ? ha->valuestring : "gelu_pytorch_tanh";
    activation_kind act = activation_from_name(act_name);
    if (act != ACT_GELU_TANH && act != ACT_SILU)
        return rlhf_fail(err, RLHF_EINPUT,
                         "config.json: hidden_activation '%s' is not supported (expected gelu_pytorch_tanh or silu)",
                         act_name);

    RLHF_TRY(decoder_state_new(m, L, err));
    decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    c->C = C, c->NH = NH, c->NKV = NKV, c->HD = HD, c->I = I, c->V = V;
    c->norm = DEC_NORM_RMS, c->norm_eps = eps, c->norm_unit_offset = 1;
    c->embed_scale = (float)sqrt((double)C);  // torch.tensor(hidden_size ** 0.5, dtype=float32)
    c->qkv = DEC_QKV_SEPARATE;
    c->mlp = DEC_MLP_GATED, c->act = act;
    c->rot_dim = HD, c->rope = freqs;
    c->scale_attn_weights = 1;
    if (v2) {
        c->attn_scale = (float)pow((double)qpas, -0.5);
        c->attn_softcap = attn_cap, c->final_softcap = final_cap;
        c->window = window, c->window_even = 1;
    }
    c->attn_pdrop = att_p;
    decoder_fill_model_config(m, GEMMA_BOS, GEMMA_EOS);
    m->cfg.max_positions = npos;
    int pad = m->cfg.pad_token_id >= 0 && m->cfg.pad_token_id < V ? m->cfg.pad_token_id : -1;
    c->padding_idx = pad;

    // Gemma's norm weights are the offsets from 1: HF initialises them to 0.
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
        if (bias) ADD(q_b, "self_attn.q_proj.bias", 1, QD, 0, INIT_ZEROS, 1);
        ADD(k_w, "self_attn.k_proj.weight", 2, KD, C, INIT_NORMAL, 0);
        if (bias) ADD(k_b, "self_attn.k_proj.bias", 1, KD, 0, INIT_ZEROS, 1);
        ADD(v_w, "self_attn.v_proj.weight", 2, KD, C, INIT_NORMAL, 0);
        if (bias) ADD(v_b, "self_attn.v_proj.bias", 1, KD, 0, INIT_ZEROS, 1);
        ADD(o_w, "self_attn.o_proj.weight", 2, C, QD, INIT_NORMAL, 0);
        if (bias) ADD(o_b, "self_attn.o_proj.bias", 1, C, 0, INIT_ZEROS, 1);
        ADD(fc_w, "mlp.gate_proj.weight", 2, I, C, INIT_NORMAL, 0);
        ADD(up_w, "mlp.up_proj.weight", 2, I, C, INIT_NORMAL, 0);
        ADD(down_w, "mlp.down_proj.weight", 2, C, I, INIT_NORMAL, 0);
        ADD(ln1_w, "input_layernorm.weight", 1, C, 0, INIT_ZEROS, 1);
        if (v2) {
            ADD(post_attn_w, "post_attention_layernorm.weight", 1, C, 0, INIT_ZEROS, 1);
            ADD(ln2_w, "pre_feedforward_layernorm.weight", 1, C, 0, INIT_ZEROS, 1);
            ADD(post_mlp_w, "post_feedforward_layernorm.weight", 1, C, 0, INIT_ZEROS, 1);
        } else {
            ADD(ln2_w, "post_attention_layernorm.weight", 1, C, 0, INIT_ZEROS, 1);
        }
#undef ADD
    }
    RLHF_TRY(decoder_add(m, &c->lnf_w, "model.norm.weight", 1, C, 0, INIT_ZEROS, 1, 0, -1, err));
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

static rlhf_status gemma_configure(model *m, rlhf_err *err) { return gemma_like_configure(m, 0, err); }
static rlhf_status gemma2_configure(model *m, rlhf_err *err) { return gemma_like_configure(m, 1, err); }

static const char *const gemma_known[] = {"GemmaModel", "GemmaForCausalLM", "GemmaForSequenceClassification", NULL};
static const char *const gemma2_known[] = {"Gemma2Model", "Gemma2ForCausalLM", "Gemma2ForSequenceClassification",
                                           NULL};

const model_family gemma_family = {
    .model_type = "gemma",
    .seqcls_architecture = "GemmaForSequenceClassification",
    .lm_architecture = "GemmaForCausalLM",
    .base_prefix = "model.",
    .configure = gemma_configure,
    .forward = decoder_forward,
    .backward = decoder_backward,
    .destroy = decoder_destroy,
    .known_architectures = gemma_known,
    .decode = decoder_decode,
};

const model_family gemma2_family = {
    .model_type = "gemma2",
    .seqcls_architecture = "Gemma2ForSequenceClassification",
    .lm_architecture = "Gemma2ForCausalLM",
    .base_prefix = "model.",
    .configure = gemma2_configure,
    .forward = decoder_forward,
    .backward = decoder_backward,
    .destroy = decoder_destroy,
    .known_architectures = gemma2_known,
    .decode = decoder_decode,
};
