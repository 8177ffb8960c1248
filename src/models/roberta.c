// RobertaForSequenceClassification (transformers' modeling_roberta.py): BERT's backbone under the
// "roberta." prefix with positions counted from padding_idx + 1 (create_position_ids_from_input_ids)
// and the RobertaClassificationHead on <s>: dropout -> dense -> tanh -> dropout -> out_proj. No pooler.
#include "models/encoder.h"

// RobertaConfig's pad_token_id default.
#define ROBERTA_DEFAULT_PAD 1

static rlhf_status roberta_configure(model *m, rlhf_err *err) {
    RLHF_TRY(encoder_new(m, err));
    encoder *e = m->impl;
    encoder_hparams *hp = &e->hp;
    RLHF_TRY(bert_read_config(m, ROBERTA_DEFAULT_PAD, err));
    if (hp->pad_token_id < 0)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: RoBERTa needs a pad_token_id (its positions start after it)");
    hp->positions = ENC_POS_ROBERTA;
    hp->position_padding_idx = hp->pad_token_id;
    // The head applies classifier_dropout (or hidden_dropout_prob) before dense and before out_proj.
    hp->head_dropout_in = hp->head_dropout_out;
    // Trainers cap sequences here: positions pad+1 .. pad+T must fit the table.
    m->cfg.max_positions = hp->max_positions - hp->pad_token_id - 1;
    if (m->cfg.max_positions < 1)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: max_position_embeddings %d leaves no position after pad_token_id %d",
                         hp->max_positions, hp->pad_token_id);
    RLHF_TRY(bert_add_backbone(m, "roberta.", err));
    RLHF_TRY(encoder_add_linear(m, &e->head_dense_w, &e->head_dense_b, "classifier.dense", hp->C, hp->C, 1, err));
    RLHF_TRY(encoder_add_linear(m, &e->head_out_w, &e->head_out_b, "classifier.out_proj", hp->num_labels, hp->C, 1, err));
    return RLHF_OK;
}

static const char *const ROBERTA_KNOWN[] = {"RobertaModel", "RobertaForMaskedLM", NULL};

const model_family roberta_family = {
    .model_type = "roberta",
    .seqcls_architecture = "RobertaForSequenceClassification",
    .lm_architecture = NULL,
    .base_prefix = "roberta.",
    .configure = roberta_configure,
    .forward = encoder_forward,
    .backward = encoder_backward,
    .destroy = encoder_destroy,
    .known_architectures = ROBERTA_KNOWN,
};
