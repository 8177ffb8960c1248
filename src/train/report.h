// report.html: training curves as inline SVG line charts in one self-contained HTML file (no scripts,
// no external assets), written atomically. Generic: a chart is a titled set of (x, y) series, so the
// reward trainer (loss, accuracy, margin) and PPO (score, KL) draw with the same code.
#ifndef RLHF_TRAIN_REPORT_H
#define RLHF_TRAIN_REPORT_H

#include "base/error.h"

typedef struct {
    const char *name;     // legend entry
    const double *x, *y;  // n points; non-finite y values are skipped
    int n;
} report_series;

typedef struct {
    const char *title;
    const char *x_label;
    const report_series *series;
    int n_series;
} report_chart;

// A table of text cells (e.g. PPO's sample prompts and completions over training): rows x cols cells,
// row-major, NULL cells empty. Text is escaped; newlines are kept.
typedef struct {
    const char *title;
    const char *const *headers;  // cols
    const char *const *cells;    // rows * cols
    int rows, cols;
} report_table;

// Writes path: an HTML page titled title, an optional preformatted summary (may be NULL), then one SVG
// chart per entry (a chart whose series are all empty says so instead of drawing), then the tables.
// Axes run between round values with ticks at multiples of 1, 2 or 5 x 10^k (class "xtick" / "ytick").
rlhf_status report_write_html(const char *path, const char *title, const char *summary,
                              const report_chart *charts, int n_charts, rlhf_err *err);
rlhf_status report_write_html_tables(const char *path, const char *title, const char *summary,
                                     const report_chart *charts, int n_charts, const report_table *tables,
                                     int n_tables, rlhf_err *err);
// The tick step for about max_ticks intervals over [lo, hi]: 1, 2 or 5 x 10^k.
double report_nice_step(double lo, double hi, int max_ticks);

#endif
