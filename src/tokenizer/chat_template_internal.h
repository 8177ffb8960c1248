// Chat templates, internals shared by the parser (chat_template_parse.c) and the renderer
// (chat_template_render.c): the memory pool, the syntax tree and the compiled template.
#ifndef RLHF_TOKENIZER_CHAT_TEMPLATE_INTERNAL_H
#define RLHF_TOKENIZER_CHAT_TEMPLATE_INTERNAL_H

#include <stddef.h>

#include "tokenizer/chat_template.h"

// ---- pool: many small zeroed allocations freed together (a template's tree, a render's values) ------
typedef struct ct_block ct_block;
typedef struct {
    ct_block *head;
    size_t total;  // bytes handed out, to cap hostile templates
    size_t limit;  // 0 = none
} ct_pool;
void *ct_alloc(ct_pool *p, size_t bytes);  // zeroed, max_align_t aligned; NULL on failure or over the limit
char *ct_strndup(ct_pool *p, const char *s, size_t n);
void ct_pool_free(ct_pool *p);

// ---- syntax tree -------------------------------------------------------------------------------------
typedef enum {
    E_STR, E_INT, E_FLOAT, E_BOOL, E_NONE,  // literals
    E_NAME,                                 // variable
    E_LIST, E_DICT,                         // [a, b]  {k: v} (args: k0, v0, k1, v1, ...)
    E_ATTR,                                 // a.name
    E_ITEM,                                 // a[b]
    E_SLICE,                                // a[args0:args1:args2] (NULL parts omitted)
    E_CALL,                                 // a(args, kw=...)
    E_FILTER,                               // a | name(args)
    E_TEST,                                 // a is [not] name(args)
    E_NOT, E_NEG, E_POS,                    // unary
    E_BIN,                                  // a op b
    E_AND, E_OR,                            // short-circuit
    E_COND                                  // b if a else c (c may be NULL: undefined)
} ct_expr_kind;

typedef enum {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN
} ct_op;

typedef struct ct_expr ct_expr;
struct ct_expr {
    ct_expr_kind kind;
    int line;
    const char *s;        // E_STR text, E_NAME / E_ATTR / E_FILTER / E_TEST name
    size_t n;             // its length
    long long i;          // E_INT, E_BOOL
    double f;             // E_FLOAT
    ct_op op;             // E_BIN
    int negated;          // E_TEST: "is not"
    ct_expr *a, *b, *c;   // operands (see the kinds)
    ct_expr **args;       // call / filter / test arguments, list items, dict keys and values, slice parts
    const char **kw;      // kw[k]: keyword of args[k] or NULL (calls and filters)
    int nargs;
};

typedef enum { S_TEXT, S_OUTPUT, S_IF, S_FOR, S_SET, S_SET_BLOCK, S_BREAK, S_CONTINUE, S_BODY } ct_stmt_kind;

typedef struct ct_stmt ct_stmt;
typedef struct {
    ct_stmt **items;
    int n;
} ct_body;

struct ct_stmt {
    ct_stmt_kind kind;
    int line;
    const char *text;     // S_TEXT
    size_t n;
    ct_expr *expr;        // S_OUTPUT value, S_SET value, S_FOR iterable
    ct_expr **conds;      // S_IF: conds[k] guards bodies[k]
    ct_body *bodies;
    int nbranch;
    ct_body body;         // S_FOR / S_SET_BLOCK / S_BODY body
    ct_body else_body;    // S_IF / S_FOR else
    const char *var[2];   // S_FOR targets (var[1] NULL for one), S_SET name (var[0]) and attribute (var[1])
    ct_expr *filter;      // S_FOR "if" condition
};

struct chat_template {
    ct_pool pool;
    ct_body root;
    char *what;           // source name for errors
    char *source;         // the template text: the parsed tree points into it, so it lives as long as the tree
    char *bos, *eos;      // from tokenizer_config.json, or NULL
};

// Parses src into t->root (allocations in t->pool); errors name t->what and the line.
rlhf_status ct_parse(chat_template *t, const char *src, rlhf_err *err);

#endif
