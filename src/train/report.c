// Inline-SVG line charts: each series is scaled into a fixed plot box with nice axis limits and drawn
// as a polyline (points as small circles when a series has few of them). Text is HTML-escaped.
#include "train/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/files.h"

// Chart geometry in SVG user units.
#define CHART_W 640
#define CHART_H 300
#define PAD_L 64
#define PAD_R 16
#define PAD_T 28
#define PAD_B 40
#define FEW_POINTS 40  // draw point markers when a series has at most this many points

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
#define N_COLORS (int)(sizeof COLORS / sizeof COLORS[0])

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} html_buf;

static void hb_printf(html_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hb_printf(html_buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int w = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && (size_t)w < room) {
            b->len += (size_t)w;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)w + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
}

static void hb_escaped(html_buf *b, const char *text) {
    for (const char *p = text ? text : ""; *p; p++) {
        switch (*p) {
        case '<': hb_printf(b, "&lt;"); break;
        case '>': hb_printf(b, "&gt;"); break;
        case '&': hb_printf(b, "&amp;"); break;
        case '"': hb_printf(b, "&quot;"); break;
        default: hb_printf(b, "%c", *p);
        }
    }
}

// Extends [lo, hi] to a non-empty range.
static void widen(double *lo, double *hi) {
    if (!(*hi > *lo)) {
        double c = *lo, d = fabs(c) > 0 ? fabs(c) * 0.1 : 1.0;
        *lo = c - d;
        *hi = c + d;
    }
}

double report_nice_step(double lo, double hi, int max_ticks) {
    double span = hi - lo;
    if (!(span > 0) || !isfinite(span)) return 1.0;
    double raw = span / (max_ticks > 0 ? max_ticks : 1);
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double nice = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0;
    return nice * mag;
}

// Axis limits at multiples of a round step enclosing [*lo, *hi]; returns the step.
static double nice_range(double *lo, double *hi) {
    double step = report_nice_step(*lo, *hi, 5);
    double a = floor(*lo / step + 1e-9) * step, z = ceil(*hi / step - 1e-9) * step;
    if (!(z > a)) z = a + step;
    *lo = a;
    *hi = z;
    return step;
}

// A tick value as text: k * step printed to the step's precision (no 0.30000000000000004).
static void tick_text(char *buf, size_t n, double v, double step) {
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-6) v = 0;
    if (fabs(v) >= 1e6 || (fabs(v) > 0 && fabs(v) < 1e-4)) snprintf(buf, n, "%.3g", v);
    else snprintf(buf, n, "%.*f", dec, v);
}

static void draw_chart(html_buf *b, const report_chart *c) {
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int points = 0;
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->series[s].n; i++) {
            double x = c->series[s].x[i], y = c->series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            xlo = fmin(xlo, x);
            xhi = fmax(xhi, x);
            ylo = fmin(ylo, y);
            yhi = fmax(yhi, y);
            points++;
        }
    hb_printf(b, "<h2>");
    hb_escaped(b, c->title);
    hb_printf(b, "</h2>\n");
    if (!points) {
        hb_printf(b, "<p><em>no values logged</em></p>\n");
        return;
    }
    widen(&xlo, &xhi);
    widen(&ylo, &yhi);
    double xstep = nice_range(&xlo, &xhi), ystep = nice_range(&ylo, &yhi);
    double pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
#define SX(x) (PAD_L + ((x) - xlo) / (xhi - xlo) * pw)
#define SY(y) (PAD_T + (1.0 - ((y) - ylo) / (yhi - ylo)) * ph)
    hb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                 "role=\"img\" font-family=\"sans-serif\" font-size=\"11\">\n",
              CHART_W, CHART_H, CHART_W, CHART_H);
    hb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%g\" height=\"%g\" fill=\"#fafafa\" stroke=\"#999\"/>\n", PAD_L,
              PAD_T, pw, ph);
    char t[48];
    for (long k = 0, n = lround((yhi - ylo) / ystep); k <= n; k++) {  // ticks at k * step: round values
        double yv = ylo + (double)k * ystep;
        tick_text(t, sizeof t, yv, ystep);
        hb_printf(b, "<line x1=\"%d\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>", PAD_L, PAD_L + pw,
                  SY(yv), SY(yv));
        hb_printf(b, "<text class=\"ytick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", PAD_L - 4,
                  SY(yv) + 4, t);
    }
    for (long k = 0, n = lround((xhi - xlo) / xstep); k <= n; k++) {
        double xv = xlo + (double)k * xstep;
        tick_text(t, sizeof t, xv, xstep);
        hb_printf(b, "<text class=\"xtick\" x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%s</text>\n", SX(xv),
                  PAD_T + ph + 14, t);
    }
    hb_printf(b, "<text x=\"%g\" y=\"%d\" text-anchor=\"middle\">", PAD_L + pw / 2, CHART_H - 6);
    hb_escaped(b, c->x_label);
    hb_printf(b, "</text>\n");
    for (int s = 0; s < c->n_series; s++) {
        const report_series *se = &c->series[s];
        const char *col = COLORS[s % N_COLORS];
        hb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col);
        for (int i = 0; i < se->n; i++)
            if (isfinite(se->x[i]) && isfinite(se->y[i])) hb_printf(b, "%.1f,%.1f ", SX(se->x[i]), SY(se->y[i]));
        // The exact values ride along as data-points="x:y ..." so the curves can be checked against
        // training_log.csv (and read back by a script) without inverting the pixel mapping.
        hb_printf(b, "\" data-series=\"");
        hb_escaped(b, se->name);
        hb_printf(b, "\" data-points=\"");
        for (int i = 0; i < se->n; i++)
            if (isfinite(se->x[i]) && isfinite(se->y[i])) hb_printf(b, "%.9g:%.9g ", se->x[i], se->y[i]);
        hb_printf(b, "\"/>\n");
        if (se->n <= FEW_POINTS)
            for (int i = 0; i < se->n; i++)
                if (isfinite(se->x[i]) && isfinite(se->y[i]))
                    hb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>", SX(se->x[i]),
                              SY(se->y[i]), col);
        hb_printf(b, "<rect x=\"%g\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%g\" y=\"%d\">",
                  PAD_L + 8 + s * 150.0, 8, col, PAD_L + 22 + s * 150.0, 17);
        hb_escaped(b, se->name);
        hb_printf(b, "</text>\n");
    }
    hb_printf(b, "</svg>\n");
#undef SX
#undef SY
}

static void draw_table(html_buf *b, const report_table *t) {
    hb_printf(b, "<h2>");
    hb_escaped(b, t->title);
    hb_printf(b, "</h2>\n");
    if (t->rows == 0) {
        hb_printf(b, "<p><em>no samples</em></p>\n");
        return;
    }
    hb_printf(b, "<table class=\"samples\">\n<tr>");
    for (int c = 0; c < t->cols; c++) {
        hb_printf(b, "<th>");
        hb_escaped(b, t->headers[c]);
        hb_printf(b, "</th>");
    }
    hb_printf(b, "</tr>\n");
    for (int r = 0; r < t->rows; r++) {
        hb_printf(b, "<tr>");
        for (int c = 0; c < t->cols; c++) {
            hb_printf(b, "<td>");
            hb_escaped(b, t->cells[(size_t)r * t->cols + c]);
            hb_printf(b, "</td>");
        }
        hb_printf(b, "</tr>\n");
    }
    hb_printf(b, "</table>\n");
}

rlhf_status report_write_html_tables(const char *path, const char *title, const char *summary,
                                     const report_chart *charts, int n_charts, const report_table *tables,
                                     int n_tables, rlhf_err *err) {
    html_buf b = {0};
    hb_printf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    hb_escaped(&b, title);
    hb_printf(&b, "</title>\n<style>body{font-family:sans-serif;margin:2em;color:#222}"
                  "pre{background:#f4f4f4;padding:1em}"
                  "table.samples{border-collapse:collapse;max-width:1100px}"
                  "table.samples td,table.samples th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;"
                  "text-align:left;white-space:pre-wrap;font-size:13px}</style></head>\n<body>\n<h1>");
    hb_escaped(&b, title);
    hb_printf(&b, "</h1>\n");
    if (summary) {
        hb_printf(&b, "<pre>");
        hb_escaped(&b, summary);
        hb_printf(&b, "</pre>\n");
    }
    for (int c = 0; c < n_charts; c++) draw_chart(&b, &charts[c]);
    for (int t = 0; t < n_tables; t++) draw_table(&b, &tables[t]);
    hb_printf(&b, "</body></html>\n");
    if (b.oom) {
        free(b.s);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory building the report", path);
    }
    rlhf_status s = atomic_write(path, b.s, b.len, err);
    free(b.s);
    return s;
}

rlhf_status report_write_html(const char *path, const char *title, const char *summary,
                              const report_chart *charts, int n_charts, rlhf_err *err) {
    return report_write_html_tables(path, title, summary, charts, n_charts, NULL, 0, err);
}
