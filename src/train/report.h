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

// Writes path: an HTML page titled title, an optional preformatted summary (may be NULL), then one SVG
// chart per entry (a chart whose series are all empty says so instead of drawing).
rlhf_status report_write_html(const char *path, const char *title, const char *summary,
                              const report_chart *charts, int n_charts, rlhf_err *err);

#endif
