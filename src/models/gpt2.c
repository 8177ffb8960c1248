// GPT-2 (GPT2LMHeadModel, GPT2ForSequenceClassification): the tensor table and hyperparameters of
// modeling_gpt2.py mapped onto the shared decoder (decoder.c). Learned absolute positions (wpe),
// pre-LayerNorm blocks, gelu_new, Conv1D weights stored (C, OC), and an lm_head tied to wte (HF saves
// no lm_head.weight, so neither do we).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/json_util.h"
#include "models/decoder.h"

// GPT2Config defaults (transformers 4.44).
#define GPT2_VOCAB 50257
#define GPT2_N_EMBD 768
#define GPT2_N_LAYER 12
#define GPT2_N_HEAD 12
#define GPT2_N_POSITIONS 1024
#define GPT2_EOS 50256
#define GPT2_PDROP 0.1
#define GPT2_LN_EPS 1e-5

static rlhf_status gpt2_configure(model *m, rlhf_err *err) {
    const cJSON *j = m->config_json;
    int V, C, L, NH, npos, inner, scale_w, inv_idx;
    float eps, embd_p, resid_p, attn_p;
    RLHF_TRY(decoder_cfg_int(j, "vocab_size", GPT2_VOCAB, 1, &V, err));
    RLHF_TRY(decoder_cfg_int(j, "n_embd", GPT2_N_EMBD, 1, &C, err));
    RLHF_TRY(decoder_cfg_int(j, "n_layer", GPT2_N_LAYER, 1, &L, err));
    RLHF_TRY(decoder_cfg_int(j, "n_head", GPT2_N_HEAD, 1, &NH, err));
    RLHF_TRY(decoder_cfg_int(j, "n_positions", GPT2_N_POSITIONS, 1, &npos, err));
    RLHF_TRY(decoder_cfg_int(j, "n_inner", 4LL * C, 1, &inner, err));  // null -> 4 * n_embd
    RLHF_TRY(decoder_cfg_float(j, "layer_norm_epsilon", GPT2_LN_EPS, &eps, err));
    RLHF_TRY(decoder_cfg_float(j, "embd_pdrop", GPT2_PDROP, &embd_p, err));
    RLHF_TRY(decoder_cfg_float(j, "resid_pdrop", GPT2_PDROP, &resid_p, err));
    RLHF_TRY(decoder_cfg_float(j, "attn_pdrop", GPT2_PDROP, &attn_p, err));
    RLHF_TRY(json_get_bool(j, "scale_attn_weights", 1, &scale_w, "config.json", err));
    RLHF_TRY(json_get_bool(j, "scale_attn_by_inverse_layer_idx", 0, &inv_idx, "config.json", err));
    if (C % NH) return rlhf_fail(err, RLHF_EINPUT, "config.json: n_embd %d is not a multiple of n_head %d", C, NH);
    const char *act_name = json_get_string(j, "activation_function", "gelu_new");
    activation_kind act = activation_from_name(act_name);
    if (act == ACT_UNKNOWN)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: unsupported activation_function '%s'", act_name);

    RLHF_TRY(decoder_state_new(m, L, err));
    decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    c->C = C, c->NH = NH, c->NKV = NH, c->HD = C / NH, c->I = inner, c->V = V;
    c->max_positions = npos;
    c->norm = DEC_NORM_LAYER, c->norm_eps = eps;
    c->qkv = DEC_QKV_GPT2, c->conv1d = 1;
    c->mlp = DEC_MLP_PLAIN, c->act = act;
    c->scale_attn_weights = scale_w, c->scale_by_inverse_layer_idx = inv_idx;
    c->embd_pdrop = embd_p, c->resid_pdrop = resid_p, c->attn_pdrop = attn_p;
    decoder_fill_model_config(m, GPT2_EOS, GPT2_EOS);

    // HF GPT2PreTrainedModel._init_weights: c_proj weights get std / sqrt(2 * n_layer).
    double range;
    RLHF_TRY(json_get_double(j, "initializer_range", 0.02, &range, "config.json", err));
    float proj_std = (float)(range / sqrt(2.0 * L));

    char n[MODEL_NAME_MAX];
    RLHF_TRY(decoder_add(m, &c->wte, "transformer.wte.weight", 2, V, C, INIT_NORMAL, 0, 0, -1, err));
    RLHF_TRY(decoder_add(m, &c->wpe, "transformer.wpe.weight", 2, npos, C, INIT_NORMAL, 0, 0, -1, err));
    for (int l = 0; l < L; l++) {
        dec_layer_offsets *o = &c->layers[l];
#define ADD(off, suffix, nd, d0, d1, init, nodecay)                                \
    do {                                                                      \
        snprintf(n, sizeof n, "transformer.h.%d.%s", l, suffix); \
        RLHF_TRY(decoder_add(m, &o->off, n, nd, d0, d1, init, nodecay, 0, -1, err)); \
    } while (0)
        ADD(ln1_w, "ln_1.weight", 1, C, 0, INIT_ONES, 1);
        ADD(ln1_b, "ln_1.bias", 1, C, 0, INIT_ZEROS, 1);
        ADD(qkv_w, "attn.c_attn.weight", 2, C, 3 * C, INIT_NORMAL, 0);
        ADD(qkv_b, "attn.c_attn.bias", 1, 3 * C, 0, INIT_ZEROS, 1);
        ADD(o_w, "attn.c_proj.weight", 2, C, C, INIT_NORMAL, 0);
        m->specs[m->n_specs - 1].init_std = proj_std;
        ADD(o_b, "attn.c_proj.bias", 1, C, 0, INIT_ZEROS, 1);
        ADD(ln2_w, "ln_2.weight", 1, C, 0, INIT_ONES, 1);
        ADD(ln2_b, "ln_2.bias", 1, C, 0, INIT_ZEROS, 1);
        ADD(fc_w, "mlp.c_fc.weight", 2, C, inner, INIT_NORMAL, 0);
        ADD(fc_b, "mlp.c_fc.bias", 1, inner, 0, INIT_ZEROS, 1);
        ADD(down_w, "mlp.c_proj.weight", 2, inner, C, INIT_NORMAL, 0);
        m->specs[m->n_specs - 1].init_std = proj_std;
        ADD(down_b, "mlp.c_proj.bias", 1, C, 0, INIT_ZEROS, 1);
#undef ADD
    }
    RLHF_TRY(decoder_add(m, &c->lnf_w, "transformer.ln_f.weight", 1, C, 0, INIT_ONES, 1, 0, -1, err));
    RLHF_TRY(decoder_add(m, &c->lnf_b, "transformer.ln_f.bias", 1, C, 0, INIT_ZEROS, 1, 0, -1, err));
    if (m->head == HEAD_LM)
        c->head = c->wte;  // lm_head.weight is wte (tie_word_embeddings, always on for GPT-2)
    else
        RLHF_TRY(decoder_add(m, &c->head, "score.weight", 2, m->cfg.num_labels, C, INIT_NORMAL, 0, 1, -1, err));
    return RLHF_OK;
}

static const char *const gpt2_known[] = {"GPT2Model", "GPT2LMHeadModel", "GPT2ForSequenceClassification",
                                         "GPT2DoubleHeadsModel", NULL};

const model_family gpt2_family = {
    .model_type = "gpt2",
    .seqcls_architecture = "GPT2ForSequenceClassification",
    .lm_architecture = "GPT2LMHeadModel",
    .base_prefix = "transformer.",
    .configure = gpt2_configure,
    .forward = decoder_forward,
    .backward = decoder_backward,
    .destroy = decoder_destroy,
    .known_architectures = gpt2_known,
    .decode = decoder_decode,
};
