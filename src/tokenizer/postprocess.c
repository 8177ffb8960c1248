// Post-processors: how the encodings of a text (and its pair) become one sequence with special tokens
// and token type ids. TemplateProcessing ($A/$B pieces with type ids, used even without special tokens),
// BertProcessing ([CLS] A [SEP] B [SEP], types 0/1), RobertaProcessing (<s> A </s></s> B </s>, all type
// 0), ByteLevel (offsets only: default concatenation) and Sequence.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define POST_MAX_NESTING 16

static rlhf_status parse_template(const cJSON *arr, const cJSON *specials, template_piece **out, int *n_out,
                                  const char *what, rlhf_err *err) {
    if (!cJSON_IsArray(arr)) return rlhf_fail(err, RLHF_EINPUT, "%s: TemplateProcessing needs \"single\" and \"pair\" arrays", what);
    int n = cJSON_GetArraySize(arr);
    template_piece *p = calloc((size_t)n + 1, sizeof *p);
    if (!p) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    *out = p;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        template_piece *t = &p[*n_out];
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken"),
                    *sq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
        const cJSON *body = sp ? sp : sq;
        const char *id = tk_tj_str(body, "id");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(body, "type_id");
        if (!id) return rlhf_fail(err, RLHF_EINPUT, "%s: template piece %d must be {\"SpecialToken\"|\"Sequence\": {\"id\": ...}}", what, *n_out);
        t->type_id = cJSON_IsNumber(ty) ? (int)ty->valuedouble : 0;
        if (sq) {
            if (!strcmp(id, "A")) t->seq = 0;
            else if (!strcmp(id, "B")) t->seq = 1;
            else return rlhf_fail(err, RLHF_EINPUT, "%s: template sequence id \"%s\" must be A or B", what, id);
        } else {
            t->is_special = 1;
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(specials, id);
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
            if (!cJSON_IsArray(ids)) return rlhf_fail(err, RLHF_EINPUT, "%s: template special token \"%s\" missing from special_tokens", what, id);
            t->n_ids = cJSON_GetArraySize(ids);
            t->ids = calloc((size_t)t->n_ids + 1, sizeof *t->ids);
            if (!t->ids) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
            for (int k = 0; k < t->n_ids; k++) {
                const cJSON *x = cJSON_GetArrayItem(ids, k);
                if (!cJSON_IsNumber(x) || x->valuedouble < 0) return rlhf_fail(err, RLHF_EINPUT, "%s: special token \"%s\" has a bad id", what, id);
                t->ids[k] = (int32_t)x->valuedouble;
            }
        }
        (*n_out)++;
    }
    return RLHF_OK;
}

static rlhf_status parse_pair(const cJSON *j, const char *key, int32_t *id, const char *what, rlhf_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, key);
    const cJSON *x = cJSON_GetArrayItem(a, 1);
    if (!cJSON_IsArray(a) || !cJSON_IsNumber(x)) return rlhf_fail(err, RLHF_EINPUT, "%s: \"%s\" must be [token, id]", what, key);
    *id = (int32_t)x->valuedouble;
    return RLHF_OK;
}

static rlhf_status parse_rec(const cJSON *j, postproc **out, const char *what, int depth, rlhf_err *err) {
    const char *type;
    RLHF_TRY(tk_tj_type(j, &type, what, err));
    if (depth > POST_MAX_NESTING) return rlhf_fail(err, RLHF_EINPUT, "%s: Sequence nested too deeply", what);
    postproc *p = calloc(1, sizeof *p);
    if (!p) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    *out = p;
    if (!strcmp(type, "TemplateProcessing")) {
        p->type = POST_TEMPLATE;
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
        RLHF_TRY(parse_template(cJSON_GetObjectItemCaseSensitive(j, "single"), sp, &p->single, &p->n_single, what, err));
        RLHF_TRY(parse_template(cJSON_GetObjectItemCaseSensitive(j, "pair"), sp, &p->pair, &p->n_pair, what, err));
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        p->type = type[0] == 'B' ? POST_BERT : POST_ROBERTA;
        RLHF_TRY(parse_pair(j, "cls", &p->cls_id, what, err));
        RLHF_TRY(parse_pair(j, "sep", &p->sep_id, what, err));
    } else if (!strcmp(type, "ByteLevel")) {
        p->type = POST_BYTELEVEL;
    } else if (!strcmp(type, "Sequence")) {
        p->type = POST_SEQUENCE;
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "processors");
        if (!cJSON_IsArray(arr)) return rlhf_fail(err, RLHF_EINPUT, "%s: Sequence needs an array \"processors\"", what);
        p->children = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *p->children);
        if (!p->children) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        const cJSON *c;
        cJSON_ArrayForEach(c, arr) {
            p->n_children++;   // counted before parsing so a failed child is freed too
            RLHF_TRY(parse_rec(c, &p->children[p->n_children - 1], what, depth + 1, err));
        }
    } else {
        return rlhf_fail(err, RLHF_EINPUT, "%s: unknown post_processor type \"%s\" (supported: TemplateProcessing, "
                         "BertProcessing, RobertaProcessing, ByteLevel, Sequence)", what, type);
    }
    return RLHF_OK;
}

rlhf_status tk_postproc_parse(const cJSON *j, postproc **out, const tok_model *m, const added_vocab *av, const char *what,
                           rlhf_err *err) {
    (void)m;
    (void)av;
    *out = NULL;
    rlhf_status st = parse_rec(j, out, what, 0, err);
    if (st != RLHF_OK) {
        tk_postproc_free(*out);
        *out = NULL;
    }
    return st;
}

void tk_postproc_free(postproc *p) {
    if (!p) return;
    for (int i = 0; i < p->n_single; i++) free(p->single[i].ids);
    for (int i = 0; i < p->n_pair; i++) free(p->pair[i].ids);
    free(p->single);
    free(p->pair);
    for (int i = 0; i < p->n_children; i++) tk_postproc_free(p->children[i]);
    free(p->children);
    free(p);
}

// The processor that decides ids: a Sequence acts as its last non-ByteLevel member (ByteLevel only trims offsets).
static const postproc *effective(const postproc *p) {
    if (!p) return NULL;
    if (p->type == POST_SEQUENCE) {
        const postproc *e = NULL;
        for (int i = 0; i < p->n_children; i++) {
            const postproc *c = effective(p->children[i]);
            if (c) e = c;
        }
        return e;
    }
    return p->type == POST_BYTELEVEL ? NULL : p;
}

int tk_postproc_added(const postproc *p, int pair) {
    p = effective(p);
    if (!p) return 0;
    if (p->type == POST_BERT) return pair ? 3 : 2;
    if (p->type == POST_ROBERTA) return pair ? 4 : 2;
    int n = 0;
    const template_piece *t = pair ? p->pair : p->single;
    int nt = pair ? p->n_pair : p->n_single;
    for (int i = 0; i < nt; i++) n += t[i].is_special ? t[i].n_ids : 0;
    return n;
}

static int put(ivec *ids, ivec *types, int32_t id, int32_t type) { return tk_ivec_push(ids, id) || tk_ivec_push(types, type); }

static int put_seq(ivec *ids, ivec *types, const ivec *s, int32_t type) {
    for (int i = 0; i < s->n; i++)
        if (put(ids, types, s->p[i], type)) return -1;
    return 0;
}

int tk_postproc_apply(const postproc *p, const ivec *a, const ivec *b, int add_special, ivec *ids, ivec *types) {
    ids->n = types->n = 0;
    p = effective(p);
    if (!p) return put_seq(ids, types, a, 0) || (b && put_seq(ids, types, b, 1));
    switch (p->type) {
    case POST_TEMPLATE: {
        const template_piece *t = b ? p->pair : p->single;
        int nt = b ? p->n_pair : p->n_single;
        for (int i = 0; i < nt; i++) {
            if (t[i].is_special) {
                if (!add_special) continue;
                for (int k = 0; k < t[i].n_ids; k++)
                    if (put(ids, types, t[i].ids[k], t[i].type_id)) return -1;
            } else if (t[i].seq == 0 || b) {
                if (put_seq(ids, types, t[i].seq == 0 ? a : b, t[i].type_id)) return -1;
            }
        }
        return 0;
    }
    case POST_BERT:
        if (!add_special) return put_seq(ids, types, a, 0) || (b && put_seq(ids, types, b, 1));
        if (put(ids, types, p->cls_id, 0) || put_seq(ids, types, a, 0) || put(ids, types, p->sep_id, 0)) return -1;
        if (b && (put_seq(ids, types, b, 1) || put(ids, types, p->sep_id, 1))) return -1;
        return 0;
    case POST_ROBERTA:
        if (!add_special) return put_seq(ids, types, a, 0) || (b && put_seq(ids, types, b, 0));
        if (put(ids, types, p->cls_id, 0) || put_seq(ids, types, a, 0) || put(ids, types, p->sep_id, 0)) return -1;
        if (b && (put(ids, types, p->sep_id, 0) || put_seq(ids, types, b, 0) || put(ids, types, p->sep_id, 0))) return -1;
        return 0;
    default:
        return -1;
    }
}

static void add_piece(cJSON *arr, int special, const char *id, int type_id) {
    cJSON *p = cJSON_CreateObject(), *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "id", id);
    cJSON_AddNumberToObject(b, "type_id", type_id);
    cJSON_AddItemToObject(p, special ? "SpecialToken" : "Sequence", b);
    cJSON_AddItemToArray(arr, p);
}

rlhf_status tk_postproc_wrap(postproc **out, const char *pre, int32_t pre_id, const char *post, int32_t post_id,
                             int pre_on_b, const tok_model *m, const added_vocab *av, const char *what, rlhf_err *err) {
    *out = NULL;
    cJSON *j = cJSON_CreateObject(), *single = cJSON_CreateArray(), *pair = cJSON_CreateArray(), *sp = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "TemplateProcessing");
    for (int half = 0; half < 2; half++) {
        cJSON *arr = half ? pair : single;
        for (int k = 0; k <= half; k++) {   // single: A; pair: A then B with type id 1
            if (pre && (k == 0 || pre_on_b)) add_piece(arr, 1, pre, k);
            add_piece(arr, 0, k ? "B" : "A", k);
            if (post) add_piece(arr, 1, post, k);
        }
    }
    const char *names[2] = {pre, post};
    int32_t ids[2] = {pre_id, post_id};
    for (int k = 0; k < 2; k++) {
        if (!names[k] || cJSON_GetObjectItemCaseSensitive(sp, names[k])) continue;
        cJSON *e = cJSON_CreateObject(), *il = cJSON_CreateArray(), *tl = cJSON_CreateArray();
        cJSON_AddStringToObject(e, "id", names[k]);
        cJSON_AddItemToArray(il, cJSON_CreateNumber(ids[k]));
        cJSON_AddItemToArray(tl, cJSON_CreateString(names[k]));
        cJSON_AddItemToObject(e, "ids", il);
        cJSON_AddItemToObject(e, "tokens", tl);
        cJSON_AddItemToObject(sp, names[k], e);
    }
    cJSON_AddItemToObject(j, "single", single);
    cJSON_AddItemToObject(j, "pair", pair);
    cJSON_AddItemToObject(j, "special_tokens", sp);
    rlhf_status st = tk_postproc_parse(j, out, m, av, what, err);
    cJSON_Delete(j);
    return st;
}
