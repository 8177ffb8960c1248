// GPT-NeoX / Pythia (GPTNeoXForCausalLM, GPTNeoXForSequenceClassification) on the shared decoder.
// Quirks of modeling_gpt_neox.py matched here: the fused query_key_value output is viewed as
// (NH, 3 * head_size), so each head's q, k, v are adjacent (DEC_QKV_NEOX); rotary embeddings cover
// only the first int(head_size * rotary_pct) features; use_parallel_residual adds attention and MLP
// to the same input; the LM head embed_out is untied unless tie_word_embeddings.
#include <stdio.h>
#include <string.h>

#include "io/json_util.h"
#include "models/decoder.h"
#include "models/rope_scaling.h"

// GPTNeoXConfig defaults (transformers 4.44).
#define NEOX_VOCAB 50432
#define NEOX_HIDDEN 6144
#define NEOX_LAYERS 44
#define NEOX_HEADS 64
#define NEOX_INTERMEDIATE 24576
#define NEOX_MAX_POS 2048
#define NEOX_ROTARY_PCT 0.25
#define NEOX_ROTARY_BASE 10000.0
#define NEOX_LN_EPS 1e-5
#define NEOX_BOS 0
#define NEOX_EOS 2

static rlhf_status neox_configure(model *m, rlhf_err *err) {
    const cJSON *j = m->config_json;
    int V, C, L, NH, I, npos, parallel, bias, tie;
    float eps, pct, base, hid_p, att_p;
    RLHF_TRY(decoder_cfg_int(j, "vocab_size", NEOX_VOCAB, 1, &V, err));
    RLHF_TRY(decoder_cfg_int(j, "hidden_size", NEOX_HIDDEN, 1, &C, err));
    RLHF_TRY(decoder_cfg_int(j, "num_hidden_layers", NEOX_LAYERS, 1, &L, err));
    RLHF_TRY(decoder_cfg_int(j, "num_attention_heads", NEOX_HEADS, 1, &NH, err));
    RLHF_TRY(decoder_cfg_int(j, "intermediate_size", NEOX_INTERMEDIATE, 1, &I, err));
    RLHF_TRY(decoder_cfg_int(j, "max_position_embeddings", NEOX_MAX_POS, 1, &npos, err));
    RLHF_TRY(decoder_cfg_float(j, "layer_norm_eps", NEOX_LN_EPS, &eps, err));
    RLHF_TRY(decoder_cfg_float(j, "rotary_pct", NEOX_ROTARY_PCT, &pct, err));
    RLHF_TRY(decoder_cfg_float(j, "rotary_emb_base", NEOX_ROTARY_BASE, &base, err));
    RLHF_TRY(decoder_cfg_float(j, "hidden_dropout", 0.0, &hid_p, err));
    RLHF_TRY(decoder_cfg_float(j, "attention_dropout", 0.0, &att_p, err));
    RLHF_TRY(json_get_bool(j, "use_parallel_residual", 1, &parallel, "config.json", err));
    RLHF_TRY(json_get_bool(j, "attention_bias", 1, &bias, "config.json", err));
    RLHF_TRY(json_get_bool(j, "tie_word_embeddings", 0, &tie, "config.json", err));
    if (C % NH)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                         C, NH);
    const char *act_name = json_get_string(j, "hidden_act", "gelu");
    activation_kind act = activation_from_name(act_name);
    if (act == ACT_UNKNOWN) return rlhf_fail(err, RLHF_EINPUT, "config.json: unsupported hidden_act '%s'", act_name);
    int HD = C / NH, rot = (int)(HD * pct);  // python int(): truncation
    if (rot % 2) return rlhf_fail(err, RLHF_EINPUT, "config.json: rotary dimension %d (head_size * rotary_pct) is odd", rot);
    rope_freqs freqs;
    RLHF_TRY(rope_scaling_from_config(j, rot, base, &freqs, err));

    RLHF_TRY(decoder_state_new(m, L, err));
    decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    c->C = C, c->NH = NH, c->NKV = NH, c->HD = HD, c->I = I, c->V = V;
    c->max_positions = 0;  // rotary: no table to overflow
    c->norm = DEC_NORM_LAYER, c->norm_eps = eps;
    c->qkv = DEC_QKV_NEOX;
    c->mlp = DEC_MLP_PLAIN, c->act = act;
    c->rot_dim = rot, c->rope = freqs;
    c->parallel_residual = parallel;
    c->scale_attn_weights = 1;
    c->resid_pdrop = hid_p, c->attn_pdrop = att_p;
    decoder_fill_model_config(m, NEOX_BOS, NEOX_EOS);
    m->cfg.max_positions = npos;

    char n[MODEL_NAME_MAX];
    RLHF_TRY(decoder_add(m, &c->wte, "gpt_neox.embed_in.weight", 2, V, C, INIT_NORMAL, 0, 0, -1, err));
    for (int l = 0; l < L; l++) {
        dec_layer_offsets *o = &c->layers[l];
#define ADD(off, suffix, nd, d0, d1, init, nodecay)                                 \
    do {                                                                      \
        snprintf(n, sizeof n, "gpt_neox.layers.%d.%s", l, suffix); \
        RLHF_TRY(decoder_add(m, &o->off, n, nd, d0, d1, init, nodecay, 0, -1, err)); \
    } while (0)
        ADD(ln1_w, "input_layernorm.weight", 1, C, 0, INIT_ONES, 1);
        ADD(ln1_b, "input_layernorm.bias", 1, C, 0, INIT_ZEROS, 1);
        ADD(ln2_w, "post_attention_layernorm.weight", 1, C, 0, INIT_ONES, 1);
        ADD(ln2_b, "post_attention_layernorm.bias", 1, C, 0, INIT_ZEROS, 1);
        ADD(qkv_w, "attention.query_key_value.weight", 2, 3 * C, C, INIT_NORMAL, 0);
        if (bias) ADD(qkv_b, "attention.query_key_value.bias", 1, 3 * C, 0, INIT_ZEROS, 1);
        ADD(o_w, "attention.dense.weight", 2, C, C, INIT_NORMAL, 0);
        if (bias) ADD(o_b, "attention.dense.bias", 1, C, 0, INIT_ZEROS, 1);
        ADD(fc_w, "mlp.dense_h_to_4h.weight", 2, I, C, INIT_NORMAL, 0);
        ADD(fc_b, "mlp.dense_h_to_4h.bias", 1, I, 0, INIT_ZEROS, 1);
        ADD(down_w, "mlp.dense_4h_to_h.weight", 2, C, I, INIT_NORMAL, 0);
        ADD(down_b, "mlp.dense_4h_to_h.bias", 1, C, 0, INIT_ZEROS, 1);
#undef ADD
    }
    RLHF_TRY(decoder_add(m, &c->lnf_w, "gpt_neox.final_layer_norm.weight", 1, C, 0, INIT_ONES, 1, 0, -1, err));
    RLHF_TRY(decoder_add(m, &c->lnf_b, "gpt_neox.final_layer_norm.bias", 1, C, 0, INIT_ZEROS, 1, 0, -1, err));
    if (m->head == HEAD_LM) {
        if (tie)
            c->head = c->wte;
        else
            RLHF_TRY(decoder_add(m, &c->head, "embed_out.weight", 2, V, C, INIT_NORMAL, 0, 1, -1, err));
    } else {
        RLHF_TRY(decoder_add(m, &c->head, "score.weight", 2, m->cfg.num_labels, C, INIT_NORMAL, 0, 1, -1, err));
    }
    return RLHF_OK;
}

static const char *const neox_known[] = {"GPTNeoXModel", "GPTNeoXForCausalLM", "GPTNeoXForSequenceClassification",
                                         NULL};

const model_family gptneox_family = {
    .model_type = "gpt_neox",
    .seqcls_architecture = "GPTNeoXForSequenceClassification",
    .lm_architecture = "GPTNeoXForCausalLM",
    .base_prefix = "gpt_neox.",
    .configure = neox_configure,
    .forward = decoder_forward,
    .backward = decoder_backward,
    .destroy = decoder_destroy,
    .known_architectures = neox_known,
    .decode = decoder_decode,
};
