// Growable byte/int buffers and the two hash maps the tokenizer uses (token -> id, merge pair -> rank).
// Open addressing with linear probing at load factor <= 1/2: lookups are the encode hot path.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

int tk_tbuf_reserve(tbuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tk_tbuf_put(tbuf *b, const char *s, size_t n) {
    if (tk_tbuf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int tk_tbuf_putc(tbuf *b, char c) { return tk_tbuf_put(b, &c, 1); }

int tk_tbuf_put_cp(tbuf *b, uint32_t cp) {
    char u[4];
    int k;
    if (cp < 0x80) {
        u[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    return tk_tbuf_put(b, u, (size_t)k);
}

void tk_tbuf_free(tbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

int tk_ivec_reserve(ivec *v, int extra) {
    if (v->n + extra <= v->cap) return 0;
    int cap = v->cap ? v->cap : 32;
    while (cap < v->n + extra) cap *= 2;
    int32_t *p = realloc(v->p, (size_t)cap * sizeof *p);
    if (!p) return -1;
    v->p = p;
    v->cap = cap;
    return 0;
}

int tk_ivec_push(ivec *v, int32_t x) {
    if (v->n == v->cap && tk_ivec_reserve(v, 1)) return -1;
    v->p[v->n++] = x;
    return 0;
}

void tk_ivec_free(ivec *v) {
    free(v->p);
    memset(v, 0, sizeof *v);
}

// FNV-1a folded with a final mix; good enough for short token strings.
uint64_t tok_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

static size_t cap_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap *= 2;
    return cap;
}

int tk_strmap_init(strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = cap_for(expected);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->klen = calloc(m->cap, sizeof *m->klen);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->klen || !m->vals) {
        tk_strmap_free(m);
        return -1;
    }
    return 0;
}

static int strmap_grow(strmap *m) {
    strmap bigger;
    if (tk_strmap_init(&bigger, m->cap)) return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) tk_strmap_put(&bigger, m->keys[i], m->klen[i], m->vals[i]);
    tk_strmap_free(m);
    *m = bigger;
    return 0;
}

int tk_strmap_put(strmap *m, const char *k, size_t len, int32_t v) {
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m)) return -1;
    size_t mask = m->cap - 1, i = (size_t)tok_hash(k, len) & mask;
    while (m->keys[i]) {
        if (m->klen[i] == len && memcmp(m->keys[i], k, len) == 0) {
            m->vals[i] = v;
            return 0;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = k;
    m->klen[i] = (uint32_t)len;
    m->vals[i] = v;
    m->n++;
    return 0;
}

int32_t tk_strmap_get(const strmap *m, const char *k, size_t len) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = (size_t)tok_hash(k, len) & mask;
    while (m->keys[i]) {
        if (m->klen[i] == len && memcmp(m->keys[i], k, len) == 0) return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

void tk_strmap_free(strmap *m) {
    free(m->keys);
    free(m->klen);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint64_t pair_key(int32_t a, int32_t b) { return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; }

static size_t pair_slot(uint64_t key, size_t mask) {
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 17) & mask;
}

int tk_pairmap_init(pairmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = cap_for(expected);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->rank = calloc(m->cap, sizeof *m->rank);
    m->id = calloc(m->cap, sizeof *m->id);
    if (!m->keys || !m->rank || !m->id) {
        tk_pairmap_free(m);
        return -1;
    }
    return 0;
}

int tk_pairmap_put(pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((m->n + 1) * 2 > m->cap) {
        pairmap bigger;
        if (tk_pairmap_init(&bigger, m->cap)) return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                uint64_t k = m->keys[i] - 1;
                tk_pairmap_put(&bigger, (int32_t)(k >> 32), (int32_t)(uint32_t)k, m->rank[i], m->id[i]);
            }
        tk_pairmap_free(m);
        *m = bigger;
    }
    uint64_t key = pair_key(a, b);
    size_t mask = m->cap - 1, i = pair_slot(key, mask);
    while (m->keys[i]) {
        if (m->keys[i] == key) {   // HF collects merges into a HashMap: a later duplicate wins
            m->rank[i] = rank;
            m->id[i] = id;
            return 0;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->rank[i] = rank;
    m->id[i] = id;
    m->n++;
    return 0;
}

int tk_pairmap_get(const pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    if (!m->cap) return 0;
    uint64_t key = pair_key(a, b);
    size_t mask = m->cap - 1, i = pair_slot(key, mask);
    while (m->keys[i]) {
        if (m->keys[i] == key) {
            *rank = m->rank[i];
            *id = m->id[i];
            return 1;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

void tk_pairmap_free(pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->id);
    memset(m, 0, sizeof *m);
}

int tk_plist_push(plist *l, const char *s, size_t n, int first) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        size_t *off = realloc(l->off, (size_t)cap * sizeof *off);
        if (!off) return -1;
        l->off = off;
        size_t *len = realloc(l->len, (size_t)cap * sizeof *len);
        if (!len) return -1;
        l->len = len;
        unsigned char *f = realloc(l->first, (size_t)cap);
        if (!f) return -1;
        l->first = f;
        l->cap = cap;
    }
    l->off[l->n] = l->text.n;
    l->len[l->n] = n;
    l->first[l->n] = (unsigned char)first;
    l->n++;
    return tk_tbuf_put(&l->text, s, n);
}

void tk_plist_clear(plist *l) {
    l->n = 0;
    l->text.n = 0;
}

void tk_plist_free(plist *l) {
    tk_tbuf_free(&l->text);
    free(l->off);
    free(l->len);
    free(l->first);
    memset(l, 0, sizeof *l);
}

int tk_slist_push(slist *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->s, (size_t)cap * sizeof *p);
        if (!p) return -1;
        l->s = p;
        size_t *ln = realloc(l->len, (size_t)cap * sizeof *ln);
        if (!ln) return -1;
        l->len = ln;
        l->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return -1;
    memcpy(c, s, n);
    c[n] = 0;
    l->len[l->n] = n;
    l->s[l->n++] = c;
    return 0;
}

void tk_slist_free(slist *l) {
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    free(l->len);
    memset(l, 0, sizeof *l);
}

void tok_scratch_free(tok_scratch *sc) {
    tk_tbuf_free(&sc->word);
    free(sc->sym_id);
    free(sc->sym_prev);
    free(sc->sym_next);
    free(sc->sym_len);
    free(sc->heap);
    free(sc->heap_new);
    free(sc->best);
    free(sc->best_len);
    free(sc->best_id);
    if (sc->md) pcre2_match_data_free(sc->md);
    memset(sc, 0, sizeof *sc);
}

const char *tk_tj_str(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int tk_tj_bool(const cJSON *j, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

rlhf_status tk_tj_type(const cJSON *j, const char **type, const char *what, rlhf_err *err) {
    if (!cJSON_IsObject(j)) return rlhf_fail(err, RLHF_EINPUT, "%s: expected a JSON object", what);
    *type = tk_tj_str(j, "type");
    if (!*type) return rlhf_fail(err, RLHF_EINPUT, "%s: missing string field \"type\"", what);
    return RLHF_OK;
}

char *tok_strndup(const char *s, size_t n) {
    char *c = malloc(n + 1);
    if (!c) return NULL;
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}
