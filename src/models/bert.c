// BertForSequenceClassification (transformers' modeling_bert.py): the tensor table, BertConfig's
// fields, and the head pooler (dense + tanh on [CLS]) -> dropout -> classifier. The math is the
// shared post-LN encoder (encoder.c); RoBERTa reuses the backbone helpers below.
#include <stdio.h>
#include <string.h>

#include "io/json_util.h"
#include "models/encoder.h"

// BertConfig defaults (transformers 4.44).
#define BERT_DEFAULT_VOCAB 30522
#define BERT_DEFAULT_HIDDEN 768
#define BERT_DEFAULT_LAYERS 12
#define BERT_DEFAULT_HEADS 12
#define BERT_DEFAULT_INTERMEDIATE 3072
#define BERT_DEFAULT_MAX_POSITIONS 512
#define BERT_DEFAULT_TYPE_VOCAB 2
#define BERT_DEFAULT_DROPOUT 0.1
#define BERT_DEFAULT_LN_EPS 1e-12

rlhf_status bert_read_config(model *m, int pad_default, rlhf_err *err) {
    encoder *e = m->impl;
    encoder_hparams *hp = &e->hp;
    RLHF_TRY(encoder_config_int(m, "vocab_size", BERT_DEFAULT_VOCAB, &hp->vocab_size, err));
    RLHF_TRY(encoder_config_int(m, "hidden_size", BERT_DEFAULT_HIDDEN, &hp->C, err));
    RLHF_TRY(encoder_config_int(m, "num_hidden_layers", BERT_DEFAULT_LAYERS, &hp->L, err));
    RLHF_TRY(encoder_config_int(m, "num_attention_heads", BERT_DEFAULT_HEADS, &hp->NH, err));
    RLHF_TRY(encoder_config_int(m, "intermediate_size", BERT_DEFAULT_INTERMEDIATE, &hp->I, err));
    RLHF_TRY(encoder_config_int(m, "max_position_embeddings", BERT_DEFAULT_MAX_POSITIONS, &hp->max_positions, err));
    RLHF_TRY(encoder_config_int(m, "type_vocab_size", BERT_DEFAULT_TYPE_VOCAB, &hp->type_vocab_size, err));
    if (hp->C % hp->NH)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                         hp->C, hp->NH);
    const char *act = json_get_string(m->config_json, "hidden_act", "gelu");
    hp->act = activation_from_name(act);
    if (hp->act == ACT_UNKNOWN) return rlhf_fail(err, RLHF_EINPUT, "config.json: unsupported hidden_act '%s'", act);
    const char *pos = json_get_string(m->config_json, "position_embedding_type", "absolute");
    if (strcmp(pos, "absolute"))
        return rlhf_fail(err, RLHF_EINPUT, "config.json: position_embedding_type '%s' is not supported (only 'absolute')",
                         pos);
    double eps;
    RLHF_TRY(json_get_double(m->config_json, "layer_norm_eps", BERT_DEFAULT_LN_EPS, &eps, "config.json", err));
    hp->ln_eps = (float)eps;
    float hidden_p;
    RLHF_TRY(encoder_config_dropout(m, "hidden_dropout_prob", BERT_DEFAULT_DROPOUT, &hidden_p, err));
    RLHF_TRY(encoder_config_dropout(m, "attention_probs_dropout_prob", BERT_DEFAULT_DROPOUT, &hp->attn_dropout, err));
    hp->emb_dropout = hp->attn_out_dropout = hp->ffn_dropout = hidden_p;
    // classifier_dropout: null means hidden_dropout_prob (BertForSequenceClassification.__init__).
    float classifier_p;
    RLHF_TRY(encoder_config_dropout(m, "classifier_dropout", hidden_p, &classifier_p, err));
    hp->head_dropout_in = 0;
    hp->head_dropout_out = classifier_p;
    hp->head_act = ACT_TANH;
    hp->positions = ENC_POS_ARANGE;
    RLHF_TRY(encoder_config_pad(m, pad_default, &hp->pad_token_id, err));
    hp->position_padding_idx = -1;
    RLHF_TRY(model_config_num_labels(m->config_json, &hp->num_labels, err));
    long long v;
    model_config *c = &m->cfg;
    c->vocab_size = hp->vocab_size;
    c->hidden_size = hp->C;
    c->num_layers = hp->L;
    c->num_heads = hp->NH;
    c->max_positions = hp->max_positions;
    c->num_labels = hp->num_labels;
    c->pad_token_id = hp->pad_token_id;
    RLHF_TRY(json_get_int(m->config_json, "bos_token_id", -1, &v, "config.json", err));
    c->bos_token_id = (int)v;
    RLHF_TRY(json_get_int(m->config_json, "eos_token_id", -1, &v, "config.json", err));
    c->eos_token_id = (int)v;
    c->type_vocab_size = hp->type_vocab_size;
    c->is_decoder = 0;
    return RLHF_OK;
}

rlhf_status bert_add_backbone(model *m, const char *prefix, rlhf_err *err) {
    encoder *e = m->impl;
    const encoder_hparams *hp = &e->hp;
    char name[MODEL_NAME_MAX];
#define N(s) (snprintf(name, sizeof name, "%s%s", prefix, s), name)
    RLHF_TRY(encoder_add_embedding(m, &e->word_emb, N("embeddings.word_embeddings.weight"), hp->vocab_size, hp->C,
                                   hp->pad_token_id, err));
    RLHF_TRY(encoder_add_embedding(m, &e->pos_emb, N("embeddings.position_embeddings.weight"), hp->max_positions,
                                   hp->C, hp->position_padding_idx, err));
    RLHF_TRY(encoder_add_embedding(m, &e->type_emb, N("embeddings.token_type_embeddings.weight"), hp->type_vocab_size,
                                   hp->C, -1, err));
    RLHF_TRY(encoder_add_layernorm(m, &e->emb_ln_w, &e->emb_ln_b, N("embeddings.LayerNorm"), 0, err));
    static const char *const modules[8] = {"attention.self.query",       "attention.self.key",
                                           "attention.self.value",       "attention.output.dense",
                                           "attention.output.LayerNorm", "intermediate.dense",
                                           "output.dense",               "output.LayerNorm"};
    char layer_fmt[MODEL_NAME_MAX];
    snprintf(layer_fmt, sizeof layer_fmt, "%sencoder.layer.%%d.", prefix);
    RLHF_TRY(encoder_add_layers(m, layer_fmt, modules, err));
#undef N
    return RLHF_OK;
}

static rlhf_status bert_configure(model *m, rlhf_err *err) {
    RLHF_TRY(encoder_new(m, err));
    encoder *e = m->impl;
    RLHF_TRY(bert_read_config(m, 0, err));
    RLHF_TRY(bert_add_backbone(m, "bert.", err));
    // The pooler belongs to BertModel (a base checkpoint has it; an MLM checkpoint does not).
    RLHF_TRY(encoder_add_linear(m, &e->head_dense_w, &e->head_dense_b, "bert.pooler.dense", e->hp.C, e->hp.C, 0, err));
    RLHF_TRY(encoder_add_linear(m, &e->head_out_w, &e->head_out_b, "classifier", e->hp.num_labels, e->hp.C, 1, err));
    return RLHF_OK;
}

static const char *const BERT_KNOWN[] = {"BertModel", "BertForMaskedLM", "BertForPreTraining", NULL};

const model_family bert_family = {
    .model_type = "bert",
    .seqcls_architecture = "BertForSequenceClassification",
    .lm_architecture = NULL,
    .base_prefix = "bert.",
    .configure = bert_configure,
    .forward = encoder_forward,
    .backward = encoder_backward,
    .destroy = encoder_destroy,
    .known_architectures = BERT_KNOWN,
};
