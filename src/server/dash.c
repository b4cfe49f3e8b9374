/* The dashboard's snapshot of the journal and its health rule (see
 * mbq/server.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dash_cdc.h"
#include "mbq/error.h"
#include "mbq/journal.h"
#include "mbq/journal_read.h"
#include "mbq/server.h"
#include "mbq/util.h"
#include "mbq/banned.h"

static void table_free(mbq_dash_table *t)
{
    free(t->name);
    mbq_table_state_clear(&t->st);
    if (t->in_flight)
        mbq_table_run_clear(&t->flight);
    mbq_table_runs_free(t->runs, t->n_runs);
    mbq_events_free(t->events, t->n_events);
    memset(t, 0, sizeof *t);
}

void mbq_dash_free(mbq_dash *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_tables; i++)
        table_free(&d->tables[i]);
    free(d->tables);
    mbq_events_free(d->alerts, d->n_alerts);
    if (d->have_last_run)
        mbq_run_record_clear(&d->last_run);
    dash_cdc_free(d);
    free(d->state_dir);
    memset(d, 0, sizeof *d);
}

/* The names to show: configured tables in config order, then the ones only
 * the journal knows (as mbq-state inspect lists them). */
static int list_names(char ***out, const mbq_config *cfg, mbq_journal *j)
{
    char **known = NULL;
    int rc = mbq_journal_table_names(j, &known);
    if (rc < 0)
        return rc;
    size_t n = 0, cap = (cfg ? cfg->n_tables : 0) + 1;
    for (size_t i = 0; known[i]; i++)
        cap++;
    char **v = mbq_calloc(cap, sizeof *v);
    if (!v) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; cfg && i < cfg->n_tables; i++)
        if (!(v[n++] = mbq_strdup(cfg->tables[i].name)))
            rc = MBQ_ENOMEM;
    for (size_t i = 0; rc == 0 && known[i]; i++) {
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = mbq_streq(v[k], known[i]);
        if (!seen && !(v[n++] = mbq_strdup(known[i])))
            rc = MBQ_ENOMEM;
    }
    if (rc < 0) {
        mbq_strv_free(v);
        v = NULL;
    }
done:
    mbq_strv_free(known);
    *out = v;
    return rc;
}

static int load_table(mbq_dash_table *t, mbq_journal *j, const mbq_dash_query *q)
{
    int rc = mbq_journal_table_get(j, &t->st, t->name);
    if (rc == 0)
        rc = mbq_journal_table_run_in_flight(j, &t->flight, &t->in_flight, t->name);
    if (rc == 0)
        rc = mbq_journal_table_runs_recent(j, &t->runs, &t->n_runs, t->name,
                                           q->runs_per_table > 0 ? q->runs_per_table : 1);
    if (rc == 0 && q->events_per_table > 0)
        rc = mbq_journal_events_recent(j, &t->events, &t->n_events, t->name,
                                       q->events_per_table);
    /* The schema changes of the table's last run, as the textfile's
     * mbq_table_schema_changes counts them. */
    if (rc == 0 && t->st.last_run_id)
        rc = mbq_journal_events_count(j, &t->schema_changes_last_run, t->name,
                                      t->st.last_run_id, "schema.");
    return rc;
}

/* The table names the query asks for (*out NULL-terminated). */
static int query_names(char ***out, mbq_journal *j, const mbq_config *cfg,
                       const mbq_dash_query *q)
{
    *out = NULL;
    if (!q->only_table)
        return list_names(out, cfg, j);
    bool configured = cfg && mbq_config_table(cfg, q->only_table);
    mbq_table_state probe;
    int rc = mbq_journal_table_get(j, &probe, q->only_table);
    if (rc < 0)
        return rc;
    bool known = probe.updated_ms != 0;
    mbq_table_state_clear(&probe);
    if (!configured && !known)
        return mbq_error_set(MBQ_ENOTFOUND, "table '%s' is neither configured nor in the journal",
                             q->only_table);
    char **names = mbq_calloc(2, sizeof *names);
    if (!names || !(names[0] = mbq_strdup(q->only_table))) {
        free(names);
        return MBQ_ENOMEM;
    }
    *out = names;
    return 0;
}

static int read_snapshot(mbq_dash *out, mbq_journal *j, const mbq_config *cfg,
                         const mbq_dash_query *q)
{
    char **names = NULL;
    int rc;
    out->journal_version = mbq_journal_version(j);
    if ((rc = query_names(&names, j, cfg, q)) < 0)
        goto done;
    size_t n = 0;
    while (names && names[n])
        n++;
    if (n && !(out->tables = mbq_calloc(n, sizeof *out->tables))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        mbq_dash_table *t = &out->tables[out->n_tables++];
        t->name = names[i];
        names[i] = NULL;
        /* A table only the journal knows was dropped from the config: it is
         * shown (its history is real) but no longer judged. */
        t->configured = !cfg || mbq_config_table(cfg, t->name) != NULL;
        if ((rc = load_table(t, j, q)) < 0)
            goto done;
    }
    if (q->alerts > 0 &&
        (rc = mbq_journal_events_by_kind(j, &out->alerts, &out->n_alerts, NULL, "alert.",
                                         q->alerts)) < 0)
        goto done;
    if ((rc = mbq_journal_last_finished_run(j, &out->last_run, &out->have_last_run)) < 0)
        goto done;
    rc = dash_cdc_read(out, j, cfg);
done:
    mbq_strv_free(names);
    return rc;
}

int mbq_dash_read(mbq_dash *out, mbq_journal *j, const char *state_dir, const mbq_config *cfg,
                  const mbq_dash_query *q, int64_t now_ms)
{
    memset(out, 0, sizeof *out);
    out->now_ms = now_ms;
    if (!(out->state_dir = mbq_strdup(state_dir)))
        return MBQ_ENOMEM;
    int rc = mbq_journal_read_begin(j);
    if (rc == 0) {
        rc = read_snapshot(out, j, cfg, q);
        mbq_journal_read_end(j);
    }
    if (rc < 0) {
        /* Freeing leaves the error message alone. */
        mbq_dash_free(out);
        out->now_ms = now_ms;
    }
    return rc;
}

int mbq_dash_load(mbq_dash *out, const char *state_dir, const mbq_config *cfg,
                  const mbq_dash_query *q, int64_t now_ms)
{
    mbq_journal *j = NULL;
    memset(out, 0, sizeof *out);
    out->now_ms = now_ms;
    int rc = mbq_journal_open(&j, state_dir, MBQ_JOURNAL_READONLY);
    if (rc == 0)
        rc = mbq_dash_read(out, j, state_dir, cfg, q, now_ms);
    mbq_journal_close(j);
    return rc;
}

int64_t mbq_dash_lag_ms(const mbq_dash *d, const mbq_dash_table *t)
{
    if (t->cdc_mode)
        return t->cdc ? d->cdc.lag_ms : -1;
    if (t->st.last_success_ms <= 0)
        return -1;
    int64_t lag = d->now_ms - t->st.last_success_ms;
    return lag > 0 ? lag : 0;
}

int mbq_dash_put_age(mbq_buf *b, int64_t ms)
{
    int64_t s = ms / 1000;
    if (s < 120)
        return mbq_buf_printf(b, "%llds", (long long)s);
    if (s < 7200)
        return mbq_buf_printf(b, "%lldm", (long long)(s / 60));
    if (s < 172800)
        return mbq_buf_printf(b, "%lldh %lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    return mbq_buf_printf(b, "%lldd %lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

bool mbq_dash_table_healthy(const mbq_dash *d, const mbq_dash_table *t, mbq_buf *why)
{
    if (!t->configured)
        return true;
    if (t->cdc_mode)
        return dash_cdc_healthy(d, t, why);
    int64_t lag = mbq_dash_lag_ms(d, t);
    if (t->st.consecutive_failures > 0) {
        if (why && (mbq_buf_printf(why, "%d failed run(s) in a row, last in %s: ",
                                   t->st.consecutive_failures,
                                   t->st.last_error_state ? t->st.last_error_state : "?") ||
                    mbq_buf_puts(why, t->st.last_error ? t->st.last_error : "(no message)")))
            return false;
        return false;
    }
    if (lag < 0) {
        if (why)
            mbq_buf_puts(why, "never synced successfully");
        return false;
    }
    if (lag > d->healthy_within_ms) {
        if (why && mbq_buf_puts(why, "last success ") == 0 && mbq_dash_put_age(why, lag) == 0 &&
            mbq_buf_puts(why, " ago, more than healthy_within ") == 0)
            mbq_dash_put_age(why, d->healthy_within_ms);
        return false;
    }
    return true;
}

/* days_from_civil (Howard Hinnant): proleptic Gregorian date to days since
 * 1970-01-01, with no dependence on the process time zone (timegm is not
 * POSIX). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool mbq_dash_cursor_ms(int64_t *out, const char *cursor)
{
    int y, mo, d, h, mi, s, used = 0;
    if (!cursor || sscanf(cursor, "%4d-%2d-%2d%*[ T]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s,
                          &used) != 6)
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 || y < 1)
        return false;
    int64_t ms = 0;
    const char *p = cursor + used;
    if (*p == '.') {
        int scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            ms += scale ? (*p - '0') * scale : 0;
    }
    if (*p == 'Z')
        p++;
    if (*p)
        return false;
    *out = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)s * 1000 + ms;
    return true;
}

const char *mbq_dash_table_status(const mbq_dash *d, const mbq_dash_table *t)
{
    if (t->cdc_mode)
        return t->configured ? dash_cdc_status(d, t) : "not configured";
    if (t->st.consecutive_failures > 0)
        return "failed";
    if (t->st.last_success_ms <= 0)
        return t->in_flight ? "first sync" : "never synced";
    if (t->configured && mbq_dash_lag_ms(d, t) > d->healthy_within_ms)
        return "behind";
    return t->configured ? "ok" : "not configured";
}
