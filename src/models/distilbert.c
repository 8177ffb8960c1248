// DistilBertForSequenceClassification (transformers' modeling_distilbert.py): word + position
// embeddings (no token types), post-LN layers without dropout on the attention output, and the head
// pre_classifier -> ReLU -> dropout(seq_classif_dropout) -> classifier on [CLS].
#include <stdio.h>

#include "io/json_util.h"
#include "models/encoder.h"

// DistilBertConfig defaults (transformers 4.44) and the LayerNorm eps its modules hard-code.
#define DISTILBERT_DEFAULT_VOCAB 30522
#define DISTILBERT_DEFAULT_DIM 768
#define DISTILBERT_DEFAULT_LAYERS 6
#define DISTILBERT_DEFAULT_HEADS 12
#define DISTILBERT_DEFAULT_HIDDEN_DIM 3072
#define DISTILBERT_DEFAULT_MAX_POSITIONS 512
#define DISTILBERT_DEFAULT_DROPOUT 0.1
#define DISTILBERT_DEFAULT_SEQ_CLASSIF_DROPOUT 0.2
#define DISTILBERT_LN_EPS 1e-12f

static rlhf_status distilbert_configure(model *m, rlhf_err *err) {
    RLHF_TRY(encoder_new(m, err));
    encoder *e = m->impl;
    encoder_hparams *hp = &e->hp;
    RLHF_TRY(encoder_config_int(m, "vocab_size", DISTILBERT_DEFAULT_VOCAB, &hp->vocab_size, err));
    RLHF_TRY(encoder_config_int(m, "dim", DISTILBERT_DEFAULT_DIM, &hp->C, err));
    RLHF_TRY(encoder_config_int(m, "n_layers", DISTILBERT_DEFAULT_LAYERS, &hp->L, err));
    RLHF_TRY(encoder_config_int(m, "n_heads", DISTILBERT_DEFAULT_HEADS, &hp->NH, err));
    RLHF_TRY(encoder_config_int(m, "hidden_dim", DISTILBERT_DEFAULT_HIDDEN_DIM, &hp->I, err));
    RLHF_TRY(encoder_config_int(m, "max_position_embeddings", DISTILBERT_DEFAULT_MAX_POSITIONS, &hp->max_positions, err));
    if (hp->C % hp->NH)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: dim %d is not a multiple of n_heads %d", hp->C, hp->NH);
    int sinusoidal;
    RLHF_TRY(json_get_bool(m->config_json, "sinusoidal_pos_embds", 0, &sinusoidal, "config.json", err));
    if (sinusoidal)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: sinusoidal_pos_embds=true is not supported (learned positions only)");
    const char *act = json_get_string(m->config_json, "activation", "gelu");
    hp->act = activation_from_name(act);
    if (hp->act == ACT_UNKNOWN) return rlhf_fail(err, RLHF_EINPUT, "config.json: unsupported activation '%s'", act);
    hp->ln_eps = DISTILBERT_LN_EPS;
    float p;
    RLHF_TRY(encoder_config_dropout(m, "dropout", DISTILBERT_DEFAULT_DROPOUT, &p, err));
    hp->emb_dropout = hp->ffn_dropout = p;
    hp->attn_out_dropout = 0;  // MultiHeadSelfAttention returns out_lin(context) undropped
    RLHF_TRY(encoder_config_dropout(m, "attention_dropout", DISTILBERT_DEFAULT_DROPOUT, &hp->attn_dropout, err));
    RLHF_TRY(encoder_config_dropout(m, "seq_classif_dropout", DISTILBERT_DEFAULT_SEQ_CLASSIF_DROPOUT,
                                    &hp->head_dropout_out, err));
    hp->head_dropout_in = 0;
    hp->head_act = ACT_RELU;
    hp->positions = ENC_POS_ARANGE;
    hp->type_vocab_size = 0;
    RLHF_TRY(encoder_config_pad(m, 0, &hp->pad_token_id, err));
    hp->position_padding_idx = -1;
    RLHF_TRY(model_config_num_labels(m->config_json, &hp->num_labels, err));
    model_config *c = &m->cfg;
    c->vocab_size = hp->vocab_size;
    c->hidden_size = hp->C;
    c->num_layers = hp->L;
    c->num_heads = hp->NH;
    c->max_positions = hp->max_positions;
    c->num_labels = hp->num_labels;
    c->pad_token_id = hp->pad_token_id;
    c->type_vocab_size = 0;

    RLHF_TRY(encoder_add_embedding(m, &e->word_emb, "distilbert.embeddings.word_embeddings.weight", hp->vocab_size,
                                   hp->C, hp->pad_token_id, err));
    RLHF_TRY(encoder_add_embedding(m, &e->pos_emb, "distilbert.embeddings.position_embeddings.weight",
                                   hp->max_positions, hp->C, -1, err));
    RLHF_TRY(encoder_add_layernorm(m, &e->emb_ln_w, &e->emb_ln_b, "distilbert.embeddings.LayerNorm", 0, err));
    static const char *const modules[8] = {"attention.q_lin", "attention.k_lin", "attention.v_lin",
                                           "attention.out_lin", "sa_layer_norm", "ffn.lin1",
                                           "ffn.lin2", "output_layer_norm"};
    RLHF_TRY(encoder_add_layers(m, "distilbert.transformer.layer.%d.", modules, err));
    RLHF_TRY(encoder_add_linear(m, &e->head_dense_w, &e->head_dense_b, "pre_classifier", hp->C, hp->C, 1, err));
    RLHF_TRY(encoder_add_linear(m, &e->head_out_w, &e->head_out_b, "classifier", hp->num_labels, hp->C, 1, err));
    return RLHF_OK;
}

static const char *const DISTILBERT_KNOWN[] = {"DistilBertModel", "DistilBertForMaskedLM", NULL};

const model_family distilbert_family = {
    .model_type = "distilbert",
    .seqcls_architecture = "DistilBertForSequenceClassification",
    .lm_architecture = NULL,
    .base_prefix = "distilbert.",
    .configure = distilbert_configure,
    .forward = encoder_forward,
    .backward = encoder_backward,
    .destroy = encoder_destroy,
    .known_architectures = DISTILBERT_KNOWN,
};
