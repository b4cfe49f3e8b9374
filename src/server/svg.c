/* The table page's history charts, drawn here as inline SVG (see
 * mbq/server.h): no script, no external resource, so they work offline and
 * under a Content-Security-Policy of default-src 'none'. Colours are
 * presentation attributes, which the CSP does not treat as inline style. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/error.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "mbq/banned.h"

#define W 640
#define H 220
#define LEFT 56   /* room for the y axis labels */
#define RIGHT 10
#define TOP 14
#define BOTTOM 34 /* room for the x axis labels and the legend */
#define PLOT_W (W - LEFT - RIGHT)
#define PLOT_H (H - TOP - BOTTOM)

#define FAIL_IF(x)                                                                                 \
    do {                                                                                           \
        if (x)                                                                                     \
            return MBQ_ENOMEM;                                                                     \
    } while (0)

static const struct {
    const char *name;
    const char *colour;
} stages[] = {
    {"schema-check", "#9141ac"}, {"extract", "#1a5fb4"}, {"stage", "#26a269"},
    {"merge", "#e66100"},        {"commit-metadata", "#5e5c64"},
};
#define N_STAGES (sizeof stages / sizeof stages[0])

static bool finished(const mbq_table_run *r)
{
    return mbq_streq(r->state, "done") || mbq_streq(r->state, "failed") ||
           mbq_streq(r->state, "abandoned");
}

static int64_t run_rows(const mbq_table_run *r)
{
    return r->rows_merged > 0 ? r->rows_merged : r->staged_rows > 0 ? r->staged_rows : 0;
}

static void stage_ms(int64_t out[N_STAGES], const mbq_table_run *r)
{
    out[0] = r->t_schema_ms;
    out[1] = r->t_extract_ms;
    out[2] = r->t_stage_ms;
    out[3] = r->t_merge_ms;
    out[4] = r->t_commit_ms;
    for (size_t i = 0; i < N_STAGES; i++)
        out[i] = out[i] > 0 ? out[i] : 0;
}

/* The runs to draw, oldest first: `runs` is newest first. */
static int pick(const mbq_table_run **v, const mbq_table_run *runs, int n)
{
    int k = 0;
    for (int i = n - 1; i >= 0; i--)
        if (finished(&runs[i]))
            v[k++] = &runs[i];
    return k;
}

static int open_svg(mbq_buf *b, const char *id, const char *label)
{
    FAIL_IF(mbq_buf_printf(b,
                           "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"%s\" "
                           "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
                           "aria-label=\"%s\">",
                           id, W, H, W, H, label) ||
            mbq_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fff\" "
                              "stroke=\"#ccc\"/>",
                           LEFT, TOP, PLOT_W, PLOT_H));
    return 0;
}

/* The y axis: 0 and the maximum, with a grid line at the half. */
static int y_axis(mbq_buf *b, const char *max_label, const char *half_label)
{
    FAIL_IF(mbq_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#eee\"/>",
                           LEFT, TOP + PLOT_H / 2, LEFT + PLOT_W, TOP + PLOT_H / 2) ||
            mbq_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>", LEFT - 4,
                           TOP + 4, max_label) ||
            mbq_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>", LEFT - 4,
                           TOP + PLOT_H / 2 + 4, half_label) ||
            mbq_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>", LEFT - 4,
                           TOP + PLOT_H + 4));
    return 0;
}

/* The x axis: the start times of the first and the last run drawn. */
static int x_axis(mbq_buf *b, const mbq_table_run *first, const mbq_table_run *last)
{
    FAIL_IF(mbq_buf_printf(b, "<text x=\"%d\" y=\"%d\">", LEFT, TOP + PLOT_H + 14) ||
            mbq_buf_time_iso(b, first->started_ms) || mbq_buf_puts(b, "</text>"));
    if (last != first)
        FAIL_IF(mbq_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LEFT + PLOT_W,
                               TOP + PLOT_H + 14) ||
                mbq_buf_time_iso(b, last->started_ms) || mbq_buf_puts(b, "</text>"));
    return 0;
}

static int empty_chart(mbq_buf *b, const char *id, const char *label)
{
    FAIL_IF(open_svg(b, id, label) ||
            mbq_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">no finished run "
                              "yet</text></svg>",
                           LEFT + PLOT_W / 2, TOP + PLOT_H / 2));
    return 0;
}

/* A bar's x and width for bar i of n: bars share the plot evenly with a gap
 * of a fifth of the slot. */
static void bar_x(double *x, double *w, int i, int n)
{
    double slot = (double)PLOT_W / n;
    *w = slot * 0.8 > 1 ? slot * 0.8 : 1;
    *x = LEFT + slot * i + slot * 0.1;
}

/* "<title>run N, TIME: what</title>", a tooltip in every browser. */
static int bar_title(mbq_buf *b, const mbq_table_run *r)
{
    FAIL_IF(mbq_buf_printf(b, "<title>run %lld, ", (long long)r->id) ||
            mbq_buf_time_iso(b, r->started_ms) || mbq_buf_puts(b, ", ") ||
            mbq_html_escape(b, r->state) || mbq_buf_puts(b, ": "));
    return 0;
}

int mbq_render_rows_chart(mbq_buf *out, const mbq_table_run *runs, int n)
{
    const mbq_table_run **v = n > 0 ? mbq_calloc((size_t)n, sizeof *v) : NULL;
    if (n > 0 && !v)
        return MBQ_ENOMEM;
    int k = pick(v, runs, n), rc = 0;
    if (k == 0) {
        rc = empty_chart(out, "chart-rows", "rows per run");
        goto done;
    }
    int64_t max = 1;
    for (int i = 0; i < k; i++)
        max = run_rows(v[i]) > max ? run_rows(v[i]) : max;
    mbq_buf top = MBQ_BUF_INIT, half = MBQ_BUF_INIT;
    if (mbq_buf_put_count(&top, max) || mbq_buf_put_count(&half, max / 2) ||
        open_svg(out, "chart-rows", "rows per run") ||
        y_axis(out, mbq_buf_cstr(&top), mbq_buf_cstr(&half)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&top);
    mbq_buf_free(&half);
    for (int i = 0; i < k && rc == 0; i++) {
        double x, w, h = (double)run_rows(v[i]) * PLOT_H / (double)max;
        bool failed = !mbq_streq(v[i]->state, "done");
        bar_x(&x, &w, i, k);
        /* A failed run synced nothing: a short red mark shows it happened. */
        if (failed)
            h = 3;
        if (mbq_buf_printf(out, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                                "height=\"%.1f\" fill=\"%s\">",
                           x, TOP + PLOT_H - h, w, h, failed ? "#c01c28" : "#1a5fb4") ||
            bar_title(out, v[i]) || mbq_buf_put_count(out, run_rows(v[i])) ||
            mbq_buf_puts(out, " rows</title></rect>"))
            rc = MBQ_ENOMEM;
    }
    if (rc == 0 && (x_axis(out, v[0], v[k - 1]) || mbq_buf_puts(out, "</svg>")))
        rc = MBQ_ENOMEM;
done:
    free((void *)v);
    return rc;
}

static int legend(mbq_buf *b)
{
    int x = LEFT;
    for (size_t s = 0; s < N_STAGES; s++) {
        FAIL_IF(mbq_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" "
                                  "fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>",
                               x, H - 12, stages[s].colour, x + 13, H - 3, stages[s].name));
        x += 20 + 7 * (int)strlen(stages[s].name);
    }
    return 0;
}

static int stage_bar(mbq_buf *b, const mbq_table_run *r, int i, int k, int64_t max)
{
    int64_t ms[N_STAGES];
    double x, w, y = TOP + PLOT_H;
    stage_ms(ms, r);
    bar_x(&x, &w, i, k);
    for (size_t s = 0; s < N_STAGES; s++) {
        if (ms[s] == 0)
            continue;
        double h = (double)ms[s] * PLOT_H / (double)max;
        y -= h;
        FAIL_IF(mbq_buf_printf(b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                                  "height=\"%.1f\" fill=\"%s\">",
                               x, y, w, h, stages[s].colour) ||
                bar_title(b, r) ||
                mbq_buf_printf(b, "%s %.3f s</title></rect>", stages[s].name,
                               (double)ms[s] / 1000.0));
    }
    return 0;
}

int mbq_render_stages_chart(mbq_buf *out, const mbq_table_run *runs, int n)
{
    const mbq_table_run **v = n > 0 ? mbq_calloc((size_t)n, sizeof *v) : NULL;
    if (n > 0 && !v)
        return MBQ_ENOMEM;
    int k = pick(v, runs, n), rc = 0;
    if (k == 0) {
        rc = empty_chart(out, "chart-stages", "duration per stage");
        goto done;
    }
    int64_t max = 1;
    for (int i = 0; i < k; i++) {
        int64_t ms[N_STAGES], sum = 0;
        stage_ms(ms, v[i]);
        for (size_t s = 0; s < N_STAGES; s++)
            sum += ms[s];
        max = sum > max ? sum : max;
    }
    mbq_buf top = MBQ_BUF_INIT, half = MBQ_BUF_INIT;
    if (mbq_buf_printf(&top, "%.1f s", (double)max / 1000.0) ||
        mbq_buf_printf(&half, "%.1f s", (double)max / 2000.0) ||
        open_svg(out, "chart-stages", "duration per stage") ||
        y_axis(out, mbq_buf_cstr(&top), mbq_buf_cstr(&half)))
        rc = MBQ_ENOMEM;
    mbq_buf_free(&top);
    mbq_buf_free(&half);
    for (int i = 0; i < k && rc == 0; i++)
        rc = stage_bar(out, v[i], i, k, max);
    if (rc == 0 && (x_axis(out, v[0], v[k - 1]) || legend(out) || mbq_buf_puts(out, "</svg>")))
        rc = MBQ_ENOMEM;
done:
    free((void *)v);
    return rc;
}
