// Hub ids resolved from the local Hugging Face cache (see hf_cache.h).
#include "io/hf_cache.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/files.h"

#define HF_REPO_MAX (4096 + 512 + 8)  // cache dir + '/' + models--ORG--NAME

static int id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

int hf_is_hub_id(const char *s) {
    struct stat st;
    if (!s || !*s || stat(s, &st) == 0 || strstr(s, "..")) return 0;
    int slashes = 0;
    size_t len = strlen(s);
    if (len > 200 || s[0] == '.' || s[0] == '-' || s[len - 1] == '/') return 0;
    for (const char *p = s; *p; p++) {
        if (*p == '/') {
            if (++slashes > 1 || p == s || p[1] == '.' || p[1] == '-') return 0;
        } else if (!id_char(*p)) {
            return 0;
        }
    }
    return 1;
}

void hf_cache_dir(char *out, size_t n) {
    const char *v = getenv("HF_HUB_CACHE");
    if (!v || !*v) v = getenv("HUGGINGFACE_HUB_CACHE");  // the older name huggingface_hub still reads
    if (v && *v) {
        snprintf(out, n, "%s", v);
        return;
    }
    if ((v = getenv("HF_HOME")) && *v) {
        snprintf(out, n, "%s/hub", v);
        return;
    }
    if ((v = getenv("XDG_CACHE_HOME")) && *v) {
        snprintf(out, n, "%s/huggingface/hub", v);
        return;
    }
    v = getenv("HOME");
    snprintf(out, n, "%s/.cache/huggingface/hub", v && *v ? v : "");
}

static int is_commit(const char *s) {
    if (strlen(s) != 40) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

// The commit refs/REVISION names ("" when the file is missing or empty).
static void read_ref(const char *repo, const char *revision, char *commit, size_t n) {
    char p[HF_REPO_MAX + 320];
    snprintf(p, sizeof p, "%s/refs/%.300s", repo, revision);
    commit[0] = 0;
    FILE *f = fopen(p, "r");
    if (!f) return;
    if (fgets(commit, (int)n, f)) commit[strcspn(commit, " \t\r\n")] = 0;
    fclose(f);
}

// The one snapshot of repo (0 when there are none or several).
static int only_snapshot(const char *repo, char *name, size_t n) {
    char p[HF_REPO_MAX + 16];
    snprintf(p, sizeof p, "%s/snapshots", repo);
    DIR *d = opendir(p);
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            if (!count) snprintf(name, n, "%s", e->d_name);
            count++;
        }
    closedir(d);
    return count == 1;
}

rlhf_status hf_cache_resolve(const char *id, const char *revision, const char *what, char *out, size_t n,
                             rlhf_err *err) {
    char cache[4096], repo[HF_REPO_MAX], folder[512], commit[256];
    hf_cache_dir(cache, sizeof cache);
    if (!revision || !*revision) revision = "main";
    // models--ORG--NAME: the id with every '/' turned into "--"
    size_t k = 0;
    k += (size_t)snprintf(folder, sizeof folder, "models--");
    for (const char *p = id; *p && k + 3 < sizeof folder; p++) {
        if (*p == '/') {
            folder[k++] = '-';
            folder[k++] = '-';
        } else {
            folder[k++] = *p;
        }
    }
    folder[k] = 0;
    snprintf(repo, sizeof repo, "%s/%s", cache, folder);
    const char *why = NULL;
    if (!dir_exists(repo)) {
        why = "not in the local Hugging Face cache";
    } else {
        if (is_commit(revision)) snprintf(commit, sizeof commit, "%s", revision);
        else read_ref(repo, revision, commit, sizeof commit);
        if (!commit[0] && !strcmp(revision, "main") && !only_snapshot(repo, commit, sizeof commit)) commit[0] = 0;
        if (!commit[0]) {
            why = "in the local Hugging Face cache but without this revision";
        } else {
            snprintf(out, n, "%s/snapshots/%s", repo, commit);
            if (dir_exists(out)) return RLHF_OK;
            why = "in the local Hugging Face cache but its snapshot directory is missing";
        }
    }
    return rlhf_fail(err, RLHF_EINPUT,
                     "%s%s%s: not a local directory, and %s (%s, revision %s); rlhf never downloads: get it with "
                     "`huggingface-cli download %s%s%s` (it lands in that cache) or `git clone "
                     "https://huggingface.co/%s` and pass the directory",
                     what ? what : "", what ? " " : "", id, why, repo, revision, id,
                     strcmp(revision, "main") ? " --revision " : "", strcmp(revision, "main") ? revision : "", id);
}
