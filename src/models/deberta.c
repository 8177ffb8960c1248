// DebertaV2ForSequenceClassification (transformers' modeling_deberta_v2.py, DeBERTa-v2 and -v3):
// the tensor table and DebertaV2Config's fields. The math is the shared post-LN encoder with
// DeBERTa's differences switched on: embeddings masked after their LayerNorm, disentangled relative
// attention (c2p / p2c, log buckets, keys shared), and the ContextPooler head
// (dropout -> dense -> pooler_hidden_act) -> dropout -> classifier.
#include <stdio.h>
#include <string.h>

#include "io/json_util.h"
#include "models/encoder.h"

// DebertaV2Config defaults (transformers 4.44).
#define DEBERTA_DEFAULT_VOCAB 128100
#define DEBERTA_DEFAULT_HIDDEN 1536
#define DEBERTA_DEFAULT_LAYERS 24
#define DEBERTA_DEFAULT_HEADS 24
#define DEBERTA_DEFAULT_INTERMEDIATE 6144
#define DEBERTA_DEFAULT_MAX_POSITIONS 512
#define DEBERTA_DEFAULT_DROPOUT 0.1
#define DEBERTA_DEFAULT_LN_EPS 1e-7

// pos_att_type is a list (["p2c", "c2p"]) or a "|"-separated string ("c2p|p2c").
static rlhf_status read_pos_att_type(const model *m, int *c2p, int *p2c, rlhf_err *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(m->config_json, "pos_att_type");
    *c2p = *p2c = 0;
    char buf[128] = "";
    if (cJSON_IsString(j))
        snprintf(buf, sizeof buf, "%s", j->valuestring);
    else if (cJSON_IsArray(j)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, j) if (cJSON_IsString(x)) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s|",
                                                                  x->valuestring);
    } else if (j && !cJSON_IsNull(j))
        return rlhf_fail(err, RLHF_EINPUT, "config.json: 'pos_att_type' must be a list or a string");
    for (char *tok = strtok(buf, "|"); tok; tok = strtok(NULL, "|")) {
        while (*tok == ' ') tok++;
        if (!strncmp(tok, "c2p", 3)) *c2p = 1;
        else if (!strncmp(tok, "p2c", 3)) *p2c = 1;
        else return rlhf_fail(err, RLHF_EINPUT, "config.json: pos_att_type '%s' is not supported (c2p, p2c)", tok);
    }
    return RLHF_OK;
}

static rlhf_status deberta_configure(model *m, rlhf_err *err) {
    RLHF_TRY(encoder_new(m, err));
    encoder *e = m->impl;
    encoder_hparams *hp = &e->hp;
    const cJSON *cfg = m->config_json;
    RLHF_TRY(encoder_config_int(m, "vocab_size", DEBERTA_DEFAULT_VOCAB, &hp->vocab_size, err));
    RLHF_TRY(encoder_config_int(m, "hidden_size", DEBERTA_DEFAULT_HIDDEN, &hp->C, err));
    RLHF_TRY(encoder_config_int(m, "num_hidden_layers", DEBERTA_DEFAULT_LAYERS, &hp->L, err));
    RLHF_TRY(encoder_config_int(m, "num_attention_heads", DEBERTA_DEFAULT_HEADS, &hp->NH, err));
    RLHF_TRY(encoder_config_int(m, "intermediate_size", DEBERTA_DEFAULT_INTERMEDIATE, &hp->I, err));
    RLHF_TRY(encoder_config_int(m, "max_position_embeddings", DEBERTA_DEFAULT_MAX_POSITIONS, &hp->max_positions, err));
    if (hp->C % hp->NH)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                         hp->C, hp->NH);
    long long v;
    RLHF_TRY(json_get_int(cfg, "type_vocab_size", 0, &v, "config.json", err));
    if (v < 0 || v > 1024) return rlhf_fail(err, RLHF_EINPUT, "config.json: 'type_vocab_size' = %lld", v);
    hp->type_vocab_size = (int)v;
    // Variants this implementation does not cover are refused by name rather than run wrongly.
    RLHF_TRY(json_get_int(cfg, "embedding_size", hp->C, &v, "config.json", err));
    if (v != hp->C) return rlhf_fail(err, RLHF_EINPUT, "config.json: embedding_size %lld != hidden_size is not supported", v);
    RLHF_TRY(json_get_int(cfg, "conv_kernel_size", 0, &v, "config.json", err));
    if (v > 0) return rlhf_fail(err, RLHF_EINPUT, "config.json: conv_kernel_size > 0 (ConvLayer) is not supported");
    RLHF_TRY(json_get_int(cfg, "attention_head_size", hp->C / hp->NH, &v, "config.json", err));
    if (v != hp->C / hp->NH) return rlhf_fail(err, RLHF_EINPUT, "config.json: attention_head_size %lld is not supported", v);
    RLHF_TRY(json_get_int(cfg, "pooler_hidden_size", hp->C, &v, "config.json", err));
    if (v != hp->C) return rlhf_fail(err, RLHF_EINPUT, "config.json: pooler_hidden_size %lld != hidden_size is not supported", v);
    int position_biased, relative, share_key;
    RLHF_TRY(json_get_bool(cfg, "position_biased_input", 1, &position_biased, "config.json", err));
    RLHF_TRY(json_get_bool(cfg, "relative_attention", 0, &relative, "config.json", err));
    RLHF_TRY(json_get_bool(cfg, "share_att_key", 0, &share_key, "config.json", err));
    RLHF_TRY(read_pos_att_type(m, &hp->c2p, &hp->p2c, err));
    if (relative && !share_key && (hp->c2p || hp->p2c))
        return rlhf_fail(err, RLHF_EINPUT, "config.json: share_att_key=false (separate pos_key_proj / pos_query_proj) is not supported");
    hp->rel_attention = relative;
    if (relative) {
        RLHF_TRY(json_get_int(cfg, "max_relative_positions", -1, &v, "config.json", err));
        hp->rel_max = v < 1 ? hp->max_positions : (int)v;
        RLHF_TRY(json_get_int(cfg, "position_buckets", -1, &v, "config.json", err));
        hp->rel_buckets = v > 0 ? (int)v : 0;
        hp->rel_span = hp->rel_buckets > 0 ? hp->rel_buckets : hp->rel_max;
    }
    const char *act = json_get_string(cfg, "hidden_act", "gelu");
    hp->act = activation_from_name(act);
    if (hp->act == ACT_UNKNOWN) return rlhf_fail(err, RLHF_EINPUT, "config.json: unsupported hidden_act '%s'", act);
    const char *pact = json_get_string(cfg, "pooler_hidden_act", "gelu");
    hp->head_act = activation_from_name(pact);
    if (hp->head_act == ACT_UNKNOWN)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: unsupported pooler_hidden_act '%s'", pact);
    double eps;
    RLHF_TRY(json_get_double(cfg, "layer_norm_eps", DEBERTA_DEFAULT_LN_EPS, &eps, "config.json", err));
    hp->ln_eps = (float)eps;
    float hidden_p;
    RLHF_TRY(encoder_config_dropout(m, "hidden_dropout_prob", DEBERTA_DEFAULT_DROPOUT, &hidden_p, err));
    RLHF_TRY(encoder_config_dropout(m, "attention_probs_dropout_prob", DEBERTA_DEFAULT_DROPOUT, &hp->attn_dropout, err));
    hp->emb_dropout = hp->attn_out_dropout = hp->ffn_dropout = hp->rel_dropout = hidden_p;
    RLHF_TRY(encoder_config_dropout(m, "pooler_dropout", 0.0, &hp->head_dropout_in, err));
    // DebertaV2ForSequenceClassification: cls_dropout, else hidden_dropout_prob.
    RLHF_TRY(encoder_config_dropout(m, "cls_dropout", hidden_p, &hp->head_dropout_out, err));
    hp->emb_mask = 1;
    hp->positions = ENC_POS_ARANGE;
    RLHF_TRY(encoder_config_pad(m, 0, &hp->pad_token_id, err));
    hp->position_padding_idx = -1;
    RLHF_TRY(model_config_num_labels(cfg, &hp->num_labels, err));
    model_config *c = &m->cfg;
    c->vocab_size = hp->vocab_size;
    c->hidden_size = hp->C;
    c->num_layers = hp->L;
    c->num_heads = hp->NH;
    c->max_positions = hp->max_positions;
    c->num_labels = hp->num_labels;
    c->pad_token_id = hp->pad_token_id;
    c->type_vocab_size = hp->type_vocab_size;

    RLHF_TRY(encoder_add_embedding(m, &e->word_emb, "deberta.embeddings.word_embeddings.weight", hp->vocab_size, hp->C,
                                   hp->pad_token_id, err));
    if (position_biased)
        RLHF_TRY(encoder_add_embedding(m, &e->pos_emb, "deberta.embeddings.position_embeddings.weight",
                                       hp->max_positions, hp->C, -1, err));
    if (hp->type_vocab_size > 0)
        RLHF_TRY(encoder_add_embedding(m, &e->type_emb, "deberta.embeddings.token_type_embeddings.weight",
                                       hp->type_vocab_size, hp->C, -1, err));
    RLHF_TRY(encoder_add_layernorm(m, &e->emb_ln_w, &e->emb_ln_b, "deberta.embeddings.LayerNorm", 0, err));
    static const char *const modules[8] = {"attention.self.query_proj",  "attention.self.key_proj",
                                           "attention.self.value_proj",  "attention.output.dense",
                                           "attention.output.LayerNorm", "intermediate.dense",
                                           "output.dense",               "output.LayerNorm"};
    RLHF_TRY(encoder_add_layers(m, "deberta.encoder.layer.%d.", modules, err));
    if (relative) {
        RLHF_TRY(encoder_add_embedding(m, &e->rel_emb, "deberta.encoder.rel_embeddings.weight", 2 * hp->rel_span,
                                       hp->C, -1, err));
        const char *norm = json_get_string(cfg, "norm_rel_ebd", "none");
        if (strstr(norm, "layer_norm"))
            RLHF_TRY(encoder_add_layernorm(m, &e->rel_ln_w, &e->rel_ln_b, "deberta.encoder.LayerNorm", 0, err));
    }
    // The pooler lives outside the "deberta." model: a DebertaV2Model checkpoint lacks it.
    RLHF_TRY(encoder_add_linear(m, &e->head_dense_w, &e->head_dense_b, "pooler.dense", hp->C, hp->C, 1, err));
    RLHF_TRY(encoder_add_linear(m, &e->head_out_w, &e->head_out_b, "classifier", hp->num_labels, hp->C, 1, err));
    return RLHF_OK;
}

static const char *const DEBERTA_KNOWN[] = {"DebertaV2Model", "DebertaV2ForMaskedLM", NULL};

const model_family deberta_v2_family = {
    .model_type = "deberta-v2",
    .seqcls_architecture = "DebertaV2ForSequenceClassification",
    .lm_architecture = NULL,
    .base_prefix = "deberta.",
    .configure = deberta_configure,
    .forward = encoder_forward,
    .backward = encoder_backward,
    .destroy = encoder_destroy,
    .known_architectures = DEBERTA_KNOWN,
};
