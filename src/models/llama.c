// Llama and Mistral (LlamaForCausalLM, LlamaForSequenceClassification, MistralForCausalLM,
// MistralForSequenceClassification) on the shared decoder: RMSNorm, rotate-half RoPE over the whole
// head with rope_theta, SwiGLU MLP (gate/up/down), grouped-query attention (num_key_value_heads),
// Mistral's sliding_window, an untied lm_head unless tie_word_embeddings, and a word embedding with
// padding_idx = pad_token_id (zero row, no gradient from the lookup) as modeling_llama.py builds it.
#include <stdio.h>
#include <string.h>

#include "io/json_util.h"
#include "models/decoder.h"
#include "models/rope_scaling.h"

// LlamaConfig / MistralConfig defaults (transformers 4.44).
#define LLAMA_VOCAB 32000
#define LLAMA_HIDDEN 4096
#define LLAMA_INTERMEDIATE 11008
#define MISTRAL_INTERMEDIATE 14336
#define LLAMA_LAYERS 32
#define LLAMA_HEADS 32
#define MISTRAL_KV_HEADS 8
#define LLAMA_MAX_POS 2048
#define MISTRAL_MAX_POS (4096 * 32)
#define MISTRAL_WINDOW 4096
#define LLAMA_RMS_EPS 1e-6
#define LLAMA_ROPE_THETA 10000.0
#define LLAMA_BOS 1
#define LLAMA_EOS 2

static rlhf_status llama_like_configure(model *m, int mistral, rlhf_err *err) {
    const cJSON *j = m->config_json;
    int V, C, L, NH, NKV, I, HD, npos, window = 0, attn_bias, mlp_bias, tie;
    float eps, theta, att_p;
    RLHF_TRY(decoder_cfg_int(j, "vocab_size", LLAMA_VOCAB, 1, &V, err));
    RLHF_TRY(decoder_cfg_int(j, "hidden_size", LLAMA_HIDDEN, 1, &C, err));
    RLHF_TRY(decoder_cfg_int(j, "intermediate_size", mistral ? MISTRAL_INTERMEDIATE : LLAMA_INTERMEDIATE, 1, &I, err));
    RLHF_TRY(decoder_cfg_int(j, "num_hidden_layers", LLAMA_LAYERS, 1, &L, err));
    RLHF_TRY(decoder_cfg_int(j, "num_attention_heads", LLAMA_HEADS, 1, &NH, err));
    RLHF_TRY(decoder_cfg_int(j, "num_key_value_heads", mistral ? MISTRAL_KV_HEADS : NH, 1, &NKV, err));
    RLHF_TRY(decoder_cfg_int(j, "max_position_embeddings", mistral ? MISTRAL_MAX_POS : LLAMA_MAX_POS, 1, &npos, err));
    if (C % NH)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                         C, NH);
    RLHF_TRY(decoder_cfg_int(j, "head_dim", C / NH, 1, &HD, err));
    if (mistral) {  // "sliding_window": null disables the window; missing means MistralConfig's default
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "sliding_window");
        if (!cJSON_IsNull(w)) RLHF_TRY(decoder_cfg_int(j, "sliding_window", MISTRAL_WINDOW, 0, &window, err));
    }
    RLHF_TRY(decoder_cfg_float(j, "rms_norm_eps", LLAMA_RMS_EPS, &eps, err));
    RLHF_TRY(decoder_cfg_float(j, "rope_theta", LLAMA_ROPE_THETA, &theta, err));
    RLHF_TRY(decoder_cfg_float(j, "attention_dropout", 0.0, &att_p, err));
    RLHF_TRY(json_get_bool(j, "attention_bias", 0, &attn_bias, "config.json", err));
    RLHF_TRY(json_get_bool(j, "mlp_bias", 0, &mlp_bias, "config.json", err));
    RLHF_TRY(json_get_bool(j, "tie_word_embeddings", 0, &tie, "config.json", err));
    if (NH % NKV)
        return rlhf_fail(err, RLHF_EINPUT,
                         "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d", NH, NKV);
    if (HD % 2) return rlhf_fail(err, RLHF_EINPUT, "config.json: head_dim %d must be even for rotary embeddings", HD);
    rope_freqs freqs;
    RLHF_TRY(rope_scaling_from_config(j, HD, theta, &freqs, err));
    const char *act_name = json_get_string(j, "hidden_act", "silu");
    if (activation_from_name(act_name) != ACT_SILU)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: hidden_act '%s' is not supported (expected silu)", act_name);

    RLHF_TRY(decoder_state_new(m, L, err));
    decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    c->C = C, c->NH = NH, c->NKV = NKV, c->HD = HD, c->I = I, c->V = V;
    c->max_positions = 0;
    c->norm = DEC_NORM_RMS, c->norm_eps = eps;
    c->qkv = DEC_QKV_SEPARATE;
    c->mlp = DEC_MLP_GATED, c->act = ACT_SILU;
    c->rot_dim = HD, c->rope = freqs;
    c->window = window;
    c->scale_attn_weights = 1;
    c->attn_pdrop = att_p;
    decoder_fill_model_config(m, LLAMA_BOS, LLAMA_EOS);
    m->cfg.max_positions = npos;
    int pad = m->cfg.pad_token_id >= 0 && m->cfg.pad_token_id < V ? m->cfg.pad_token_id : -1;
    c->padding_idx = pad;

    char n[MODEL_NAME_MAX];
    int QD = NH * HD, KD = NKV * HD;
    RLHF_TRY(decoder_add(m, &c->wte, "model.embed_tokens.weight", 2, V, C, INIT_NORMAL, 0, 0, pad, err));
    for (int l = 0; l < L; l++) {
        dec_layer_offsets *o = &c->layers[l];
#define ADD(off, suffix, nd, d0, d1, init, nodecay)                              \
    do {                                                                      \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix); \
        RLHF_TRY(decoder_add(m, &o->off, n, nd, d0, d1, init, nodecay, 0, -1, err)); \
    } while (0)
        ADD(q_w, "self_attn.q_proj.weight", 2, QD, C, INIT_NORMAL, 0);
        if (attn_bias) ADD(q_b, "self_attn.q_proj.bias", 1, QD, 0, INIT_ZEROS, 1);
        ADD(k_w, "self_attn.k_proj.weight", 2, KD, C, INIT_NORMAL, 0);
        if (attn_bias) ADD(k_b, "self_attn.k_proj.bias", 1, KD, 0, INIT_ZEROS, 1);
        ADD(v_w, "self_attn.v_proj.weight", 2, KD, C, INIT_NORMAL, 0);
        if (attn_bias) ADD(v_b, "self_attn.v_proj.bias", 1, KD, 0, INIT_ZEROS, 1);
        ADD(o_w, "self_attn.o_proj.weight", 2, C, QD, INIT_NORMAL, 0);
        if (attn_bias) ADD(o_b, "self_attn.o_proj.bias", 1, C, 0, INIT_ZEROS, 1);
        ADD(fc_w, "mlp.gate_proj.weight", 2, I, C, INIT_NORMAL, 0);
        if (mlp_bias) ADD(fc_b, "mlp.gate_proj.bias", 1, I, 0, INIT_ZEROS, 1);
        ADD(up_w, "mlp.up_proj.weight", 2, I, C, INIT_NORMAL, 0);
        if (mlp_bias) ADD(up_b, "mlp.up_proj.bias", 1, I, 0, INIT_ZEROS, 1);
        ADD(down_w, "mlp.down_proj.weight", 2, C, I, INIT_NORMAL, 0);
        if (mlp_bias) ADD(down_b, "mlp.down_proj.bias", 1, C, 0, INIT_ZEROS, 1);
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

static rlhf_status llama_configure(model *m, rlhf_err *err) { return llama_like_configure(m, 0, err); }
static rlhf_status mistral_configure(model *m, rlhf_err *err) { return llama_like_configure(m, 1, err); }

static const char *const llama_known[] = {"LlamaModel", "LlamaForCausalLM", "LlamaForSequenceClassification", NULL};
static const char *const mistral_known[] = {"MistralModel", "MistralForCausalLM", "MistralForSequenceClassification",
                                            NULL};

const model_family llama_family = {
    .model_type = "llama",
    .seqcls_architecture = "LlamaForSequenceClassification",
    .lm_architecture = "LlamaForCausalLM",
    .base_prefix = "model.",
    .configure = llama_configure,
    .forward = decoder_forward,
    .backward = decoder_backward,
    .destroy = decoder_destroy,
    .known_architectures = llama_known,
    .decode = decoder_decode,
};

const model_family mistral_family = {
    .model_type = "mistral",
    .seqcls_architecture = "MistralForSequenceClassification",
    .lm_architecture = "MistralForCausalLM",
    .base_prefix = "model.",
    .configure = mistral_configure,
    .forward = decoder_forward,
    .backward = decoder_backward,
    .destroy = decoder_destroy,
    .known_architectures = mistral_known,
    .decode = decoder_decode,
};
