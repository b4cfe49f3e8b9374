/* The schema-check state: make the BigQuery target able to take what the
 * MySQL table now holds, and report every change (issue: schema monitoring).
 *
 * What BigQuery allows is applied; what it does not is stopped with an error
 * that says what changed and how to recover:
 *   - new MySQL columns: added to the target as NULLABLE (tables.patch),
 *     then proven queryable before any row is loaded into them;
 *   - a type whose mapping widens (INT64 -> NUMERIC/BIGNUMERIC/FLOAT64,
 *     NUMERIC -> BIGNUMERIC/FLOAT64): ALTER COLUMN SET DATA TYPE;
 *   - any other type change: the table stops (policy 'fail'), or the whole
 *     table is reloaded with the new schema in one WRITE_TRUNCATE load job
 *     (policy 'rebuild', see plan_rebuild());
 *   - dropped columns: kept in BigQuery (history), NULL from then on;
 *   - a drop and an add of the same type in one run: reported as a probable
 *     rename, nothing moved;
 *   - primary key or cursor column changed or gone: the table stops with the
 *     `mbq-state reset` command that recovers it.
 * Each change is journaled as an event once: an event already journaled
 * since the table's last successful sync is not journaled again (a resumed or
 * retried run sees the same change again), and a change that an interrupted
 * run applied in BigQuery but did not journal (killed between the two, fault
 * point 'schema-check.altered') is journaled by the next run, which finds it
 * by comparing the journaled MySQL schema with the target. */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mbq/bq.h"
#include "mbq/error.h"
#include "mbq/fault.h"
#include "mbq/journal.h"
#include "mbq/log.h"
#include "mbq/reconcile.h"
#include "mbq/util.h"
#include "sync_internal.h"
#include "mbq/banned.h"

int mbq_schema_note(table_job *t, const char *fmt, ...)
{
    mbq_buf b = MBQ_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    int rc = mbq_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    char **grown = rc == 0 ? mbq_realloc(t->changes, (t->n_changes + 1) * sizeof *grown) : NULL;
    if (!grown) {
        mbq_buf_free(&b);
        return MBQ_ENOMEM;
    }
    t->changes = grown;
    t->changes[t->n_changes++] = mbq_buf_detach(&b);
    return 0;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Is an event like this one (kind, column, types, action) in the table's
 * journal? Its time goes to *ts_ms. Reads the newest events only: a change
 * older than that has long been reported. */
static int find_event(bool *found, int64_t *ts_ms, sync_ctx *ctx, table_job *t, const char *kind,
                      const char *column, const char *old_type, const char *new_type,
                      const char *action)
{
    mbq_event *ev = NULL;
    int n = 0;
    *found = false;
    if (!ctx->j)
        return 0;
    int rc = mbq_journal_events_recent(ctx->j, &ev, &n, t->tc->name, 500);
    for (int i = 0; rc == 0 && i < n && !*found; i++) {
        if (same_str(ev[i].kind, kind) && same_str(ev[i].column_name, column) &&
            same_str(ev[i].old_type, old_type) && same_str(ev[i].new_type, new_type) &&
            same_str(ev[i].action, action)) {
            *found = true;
            if (ts_ms)
                *ts_ms = ev[i].ts_ms;
        }
    }
    mbq_events_free(ev, n);
    return rc;
}

static int event(sync_ctx *ctx, table_job *t, const char *kind, const char *column,
                 const char *old_type, const char *new_type, const char *action,
                 const char *detail)
{
    if (ctx->dry_run || !ctx->j)
        return 0;
    /* Once per change: a run that stopped on (or was killed after) this
     * change and is retried sees it again. */
    bool found = false;
    int64_t ts_ms = 0;
    int rc = find_event(&found, &ts_ms, ctx, t, kind, column, old_type, new_type, action);
    if (rc < 0)
        return rc;
    if (found && ts_ms >= t->committed.last_success_ms)
        return 0;
    mbq_event e = {0};
    e.run_id = (char *)ctx->run_id;
    e.table_name = (char *)t->tc->name;
    e.kind = (char *)kind;
    e.column_name = (char *)column;
    e.old_type = (char *)old_type;
    e.new_type = (char *)new_type;
    e.action = (char *)action;
    e.detail = (char *)detail;
    return mbq_journal_event_add(ctx->j, &e);
}

/* The journaled form of a source schema: enough to tell, next time, which
 * columns were added, dropped or changed type, and whether the key moved. */
static char *schema_json(const mbq_table_schema *s, const table_job *t)
{
    json_object *root = json_object_new_object(), *cols = json_object_new_array();
    for (size_t i = 0; i < s->n_columns; i++) {
        const mbq_column *c = &s->columns[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(c->name));
        json_object_object_add(o, "type", json_object_new_string(c->column_type));
        json_object_object_add(o, "bq_type",
                               json_object_new_string(mbq_bq_type_name(c->map.bq_type)));
        json_object_array_add(cols, o);
    }
    json_object_object_add(root, "columns", cols);
    json_object *pk = json_object_new_array();
    for (size_t i = 0; i < t->tc->n_primary_key; i++)
        json_object_array_add(pk, json_object_new_string(t->tc->primary_key[i]));
    json_object_object_add(root, "primary_key", pk);
    json_object_object_add(root, "cursor", t->tc->updated_column
                                               ? json_object_new_string(t->tc->updated_column)
                                               : NULL);
    char *out = mbq_strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
    return out;
}

static const char *jget(json_object *o, const char *key)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* Can BigQuery's ALTER COLUMN SET DATA TYPE turn `from` into `to`? (Its
 * documented coercions: INT64 -> NUMERIC, BIGNUMERIC, FLOAT64; NUMERIC ->
 * BIGNUMERIC, FLOAT64.) */
static bool bq_can_widen(const char *from, const char *to)
{
    if (strcmp(from, "INT64") == 0)
        return !strcmp(to, "NUMERIC") || !strcmp(to, "BIGNUMERIC") || !strcmp(to, "FLOAT64");
    if (strcmp(from, "NUMERIC") == 0)
        return !strcmp(to, "BIGNUMERIC") || !strcmp(to, "FLOAT64");
    return false;
}

/* A key or cursor change cannot be followed by MERGE: stop with the command
 * that recovers. */
static int check_key_and_cursor(sync_ctx *ctx, table_job *t, json_object *prev)
{
    json_object *pk;
    if (!prev || !json_object_object_get_ex(prev, "primary_key", &pk))
        return 0;
    bool same = json_object_array_length(pk) == t->tc->n_primary_key;
    for (size_t i = 0; same && i < t->tc->n_primary_key; i++)
        same = strcasecmp(json_object_get_string(json_object_array_get_idx(pk, i)),
                          t->tc->primary_key[i]) == 0;
    const char *prev_cursor = jget(prev, "cursor");
    bool cursor_same = (!prev_cursor && !t->tc->updated_column) ||
                       (prev_cursor && t->tc->updated_column &&
                        strcasecmp(prev_cursor, t->tc->updated_column) == 0);
    if (same && cursor_same)
        return 0;
    /* The event says from what to what: "id" -> "id,region" for a key. */
    mbq_buf was = MBQ_BUF_INIT, now = MBQ_BUF_INIT;
    int rc = 0;
    if (!same) {
        for (size_t i = 0; rc == 0 && i < json_object_array_length(pk); i++)
            rc = mbq_buf_printf(&was, "%s%s", i ? "," : "",
                                json_object_get_string(json_object_array_get_idx(pk, i)));
        for (size_t i = 0; rc == 0 && i < t->tc->n_primary_key; i++)
            rc = mbq_buf_printf(&now, "%s%s", i ? "," : "", t->tc->primary_key[i]);
    } else {
        rc = mbq_buf_puts(&was, prev_cursor ? prev_cursor : "(none)");
        if (rc == 0)
            rc = mbq_buf_puts(&now, t->tc->updated_column ? t->tc->updated_column : "(none)");
    }
    if (rc == 0)
        rc = event(ctx, t, !same ? "schema.key_changed" : "schema.cursor_changed", NULL, was.ptr,
                   now.ptr, "stopped", "rows already in BigQuery are keyed by the old one");
    if (rc == 0)
        rc = mbq_error_set(MBQ_ESCHEMA,
                           "table '%s': the %s changed since the last sync ('%s' -> '%s'); rows "
                           "already in BigQuery are keyed by the old one, so mbq stops. To "
                           "recover: check the target, then run 'mbq-state reset %s --full "
                           "--yes' for a full resync",
                           t->tc->name, !same ? "primary key" : "cursor column", was.ptr,
                           now.ptr, t->tc->name);
    mbq_buf_free(&was);
    mbq_buf_free(&now);
    return rc;
}

/* Prove that queries see the columns just added (on BigQuery they do at
 * once; the local emulator only changes the metadata, EMULATOR.md 5), so a
 * load never writes into a column that MERGE cannot read. */
static int verify_columns_queryable(sync_ctx *ctx, table_job *t, const mbq_bq_schema *added)
{
    mbq_buf sql = MBQ_BUF_INIT, id = MBQ_BUF_INIT;
    mbq_bq_job *job = NULL;
    char trid[32], n[32];
    snprintf(trid, sizeof trid, "%" PRId64, t->run.id);
    snprintf(n, sizeof n, "%" PRId64, mbq_now_ms());
    int rc = mbq_buf_puts(&sql, "SELECT ");
    for (size_t i = 0; rc == 0 && i < added->n_fields; i++) {
        if (i)
            rc = mbq_buf_puts(&sql, ", ");
        if (rc == 0)
            rc = mbq_buf_quote_bq_ident(&sql, added->fields[i].name);
    }
    if (rc == 0)
        rc = mbq_buf_puts(&sql, " FROM ");
    if (rc == 0)
        rc = mbq_bq_table_ref(&sql, ctx, t->tc->target);
    if (rc == 0)
        rc = mbq_buf_puts(&sql, " LIMIT 0");
    if (rc == 0)
        rc = mbq_bq_job_id(&id, "mbq_verify", ctx->run_id, trid, n, (const char *)NULL);
    if (rc == 0 && (rc = mbq_bq_query(&job, ctx->bq, id.ptr, sql.ptr, NULL)) < 0)
        rc = mbq_error_set(MBQ_ESCHEMA,
                           "table '%s': BigQuery accepted the new column(s) on '%s' but a query "
                           "cannot read them (%s); no rows were loaded. This is a known "
                           "limitation of the local BigQuery emulator (README, emulator "
                           "divergences); on BigQuery it does not happen",
                           t->tc->name, t->tc->target, mbq_error_last());
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    mbq_buf_free(&id);
    return rc;
}

static int alter_type(sync_ctx *ctx, table_job *t, const char *column, const char *type)
{
    mbq_buf sql = MBQ_BUF_INIT, id = MBQ_BUF_INIT;
    mbq_bq_job *job = NULL;
    int rc = mbq_buf_puts(&sql, "ALTER TABLE ");
    if (rc == 0)
        rc = mbq_bq_table_ref(&sql, ctx, t->tc->target);
    if (rc == 0)
        rc = mbq_buf_puts(&sql, " ALTER COLUMN ");
    if (rc == 0)
        rc = mbq_buf_quote_bq_ident(&sql, column);
    if (rc == 0)
        rc = mbq_buf_printf(&sql, " SET DATA TYPE %s", type);
    /* The id names the change itself: repeating it after a crash finds the
     * job that already altered the column. */
    if (rc == 0)
        rc = mbq_bq_job_id(&id, "mbq_alter", t->tc->target, column, type, ctx->run_id,
                           (const char *)NULL);
    if (rc == 0)
        rc = mbq_bq_query(&job, ctx->bq, id.ptr, sql.ptr, NULL);
    mbq_bq_job_free(job);
    mbq_buf_free(&sql);
    mbq_buf_free(&id);
    return rc;
}

/* The journaled column named `name` (MySQL name), or NULL. */
static json_object *prev_column(json_object *pcols, const char *name)
{
    size_t n = pcols ? json_object_array_length(pcols) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *pc = json_object_array_get_idx(pcols, i);
        if (jget(pc, "name") && strcasecmp(jget(pc, "name"), name) == 0)
            return pc;
    }
    return NULL;
}

/* A journaled column that MySQL no longer has and that mapped to `bq_type`:
 * with a column of that type just added, probably its new name. Each
 * dropped column explains at most one added column (`used`). */
static const char *renamed_from(json_object *pcols, const mbq_table_schema *src, bool *used,
                                const char *bq_type)
{
    size_t n = pcols ? json_object_array_length(pcols) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *pc = json_object_array_get_idx(pcols, i);
        const char *name = jget(pc, "name"), *type = jget(pc, "bq_type");
        if (!used[i] && name && type && strcmp(type, bq_type) == 0 &&
            !mbq_table_schema_column(src, name)) {
            used[i] = true;
            return name;
        }
    }
    return NULL;
}

/* Report columns about to be added (and the probable renames among them). */
static int note_added(sync_ctx *ctx, table_job *t, const mbq_bq_schema *added, json_object *pcols,
                      bool *used, const char *prefix, const char *suffix)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < added->n_fields; i++) {
        const mbq_bq_field *f = &added->fields[i];
        const char *from = used ? renamed_from(pcols, t->src, used, f->type) : NULL;
        rc = mbq_schema_note(t, "%sadded column '%s' %s%s%s%s%s", prefix, f->name, f->type,
                             from ? " (probably a rename of '" : "", from ? from : "",
                             from ? "': no data moved)" : "", suffix);
        if (rc == 0 && from)
            mbq_log(MBQ_LOG_WARN, t->tc->name, "schema-check",
                    "column '%s' is probably a rename of '%s' (a drop and an add of the same "
                    "type): no data moved",
                    f->name, from);
        if (rc == 0 && from)
            rc = event(ctx, t, "schema.probable_rename", f->name, from, f->name, "reported",
                       "a drop and an add of the same type: no data was moved");
    }
    return rc;
}

/* Policy 'rebuild' and a type BigQuery cannot change in place: no ALTER
 * at all; machine.c reloads the whole table (full extract) in one
 * WRITE_TRUNCATE load job into the target with t->load_schema. On BigQuery
 * such a load replaces the table's rows and its schema together, atomically
 * (jobs.insert docs, writeDisposition WRITE_TRUNCATE: "uses the schema from
 * the load"), so readers see the old table or the new one, never a mix.
 *
 * The new schema: the MySQL columns with their new types, in MySQL's order,
 * then the target's columns that MySQL no longer has, with their types as
 * they are. Those are kept although every row is reloaded from MySQL (so
 * they are NULL in every row afterwards): their types cannot be affected by
 * the change, and dropping them would break every view and query that names
 * them, which a schema change in MySQL should not do silently.
 *
 * A rebuild whose load did not change the target's type (the local emulator
 * ignores a load job's schema for an existing table, README divergences)
 * would be seen by the next run as the same change again; it stops then
 * instead of reloading the table on every run. */
static int plan_rebuild(sync_ctx *ctx, table_job *t, const mbq_bq_table_info *target,
                        const mbq_bq_schema *to_add, const mbq_bq_schema *to_widen,
                        json_object *pcols, bool *rename_used)
{
    const mbq_table_config *tc = t->tc;
    int rc = 0;
    const char *verb = ctx->dry_run ? "would rebuild: " : "rebuilding: ";
    for (size_t i = 0; i < t->stage_schema->n_fields; i++) {
        const mbq_bq_field *want = &t->stage_schema->fields[i];
        const mbq_bq_field *have = mbq_bq_schema_find(target->schema, want->name);
        if (!have || strcmp(have->type, want->type) == 0)
            continue;
        bool widen = mbq_bq_schema_find(to_widen, want->name) != NULL;
        bool found = false;
        int64_t ts_ms = 0;
        if (!widen &&
            (rc = find_event(&found, &ts_ms, ctx, t, "schema.type_change", want->name, have->type,
                             want->type, "rebuild")) < 0)
            return rc;
        if (found && t->committed.last_success_ms > ts_ms) {
            if ((rc = event(ctx, t, "schema.type_change", want->name, have->type, want->type,
                            "stopped", "a rebuild committed but the target kept the old type")) <
                0)
                return rc;
            return mbq_error_set(MBQ_ESCHEMA,
                                 "table '%s': column '%s' of '%s' is still %s in BigQuery after "
                                 "a rebuild loaded the whole table with it as %s: the warehouse "
                                 "kept the old schema, so mbq stops instead of reloading the "
                                 "table again. The local BigQuery emulator ignores a load job's "
                                 "schema for an existing table (README, emulator divergences). "
                                 "To recover: drop the target table '%s', then run 'mbq-state "
                                 "reset %s --full --yes'",
                                 tc->name, want->name, tc->target, have->type, want->type,
                                 tc->target, tc->name);
        }
        if ((rc = event(ctx, t, "schema.type_change", want->name, have->type, want->type,
                        "rebuild",
                        widen ? "widened by the rebuild's load"
                              : "BigQuery cannot change this type in place: the whole table "
                                "is reloaded with the new schema in one WRITE_TRUNCATE load")) <
                0 ||
            (rc = mbq_schema_note(t, "%scolumn '%s' changed type %s -> %s%s", verb, want->name,
                                  have->type, want->type,
                                  widen ? "" : " (BigQuery cannot alter it in place: full reload "
                                               "with the new schema)")) < 0)
            return rc;
        mbq_log(MBQ_LOG_WARN, tc->name, "schema-check",
                "column '%s' changed type %s -> %s: %s the whole table", want->name, have->type,
                want->type, ctx->dry_run ? "would rebuild" : "rebuilding");
    }
    if ((rc = note_added(ctx, t, to_add, pcols, rename_used, verb, " (by the rebuild's load)")) <
        0)
        return rc;
    for (size_t i = 0; !ctx->dry_run && i < to_add->n_fields; i++) {
        if ((rc = event(ctx, t, "schema.add_column", to_add->fields[i].name, NULL,
                        to_add->fields[i].type, "rebuild", "added by the rebuild's load")) < 0)
            return rc;
    }

    if ((rc = mbq_bq_schema_new(&t->load_schema)) < 0)
        return rc;
    for (size_t i = 0; i < t->stage_schema->n_fields; i++) {
        const mbq_bq_field *f = &t->stage_schema->fields[i];
        if ((rc = mbq_bq_schema_add(t->load_schema, f->name, f->type, MBQ_BQ_NULLABLE, NULL)) < 0)
            return rc;
    }
    for (size_t i = 0; i < target->schema->n_fields; i++) {
        const mbq_bq_field *f = &target->schema->fields[i];
        if (!mbq_bq_schema_find(t->load_schema, f->name) &&
            (rc = mbq_bq_schema_add(t->load_schema, f->name, f->type, MBQ_BQ_NULLABLE, NULL)) < 0)
            return rc;
    }
    /* The rebuild's WRITE_TRUNCATE load replaces the schema with this one:
     * it carries what users put on the target (descriptions, policy tags,
     * ...), so that the reload changes the types and nothing else. */
    if ((rc = mbq_bq_schema_carry(t->load_schema, target->schema)) < 0)
        return rc;
    t->rebuild = true;
    return 0;
}

/* The target is gone from BigQuery (tables.get 404) while a cursor is
 * committed: dropped by someone, or expired (a dataset's
 * defaultTableExpirationMs applies to every table created in it, and the
 * BigQuery sandbox expires tables after 60 days:
 * https://cloud.google.com/bigquery/docs/sandbox#limits). Creating it again
 * and syncing on from the cursor would leave it holding only the rows
 * changed since, every older row silently lost. Policy 'fail' (the default:
 * a full reload of a large table costs time and money, and someone may want
 * to restore the table from a snapshot first) stops the table with the
 * command that reloads it; 'reload' does that reload itself.
 *
 * For 'reload' the order is what makes it safe to kill: first the in-flight
 * run goes back to extract, then the committed cursor is cleared, both
 * journaled, and only then (in the caller) is the target created. A process
 * killed after the create finds a target and no cursor: a first sync, which
 * loads every row. */
static int target_lost(sync_ctx *ctx, table_job *t)
{
    const mbq_table_config *tc = t->tc;
    bool reload = tc->on_missing_target == MBQ_MISSING_RELOAD;
    mbq_buf detail = MBQ_BUF_INIT;
    int rc = mbq_buf_printf(&detail, "target '%s.%s' not found with cursor '%s' committed",
                            ctx->cfg->bigquery.dataset, tc->target, t->committed.cursor_value);
    if (rc == 0)
        rc = event(ctx, t, "target.missing", NULL, NULL, NULL, reload ? "reload" : "stopped",
                   detail.ptr);
    mbq_buf_free(&detail);
    if (rc < 0)
        return rc;
    if (!reload)
        return mbq_error_set(MBQ_ESCHEMA,
                             "table '%s': the target table '%s.%s' is gone from BigQuery "
                             "(dropped, or expired by the dataset's default table expiration) "
                             "while cursor '%s' is committed; recreating it and syncing on from "
                             "the cursor would lose every older row, so mbq stops. To recover: "
                             "restore the table, or run 'mbq-state reset %s --full --yes' to "
                             "reload it in full (or set 'on_missing_target: reload')",
                             tc->name, ctx->cfg->bigquery.dataset, tc->target,
                             t->committed.cursor_value, tc->name);
    mbq_log(MBQ_LOG_WARN, tc->name, "schema-check",
            "target '%s' is gone from BigQuery while cursor %s is committed: %s in full",
            tc->target, t->committed.cursor_value, ctx->dry_run ? "would reload" : "reloading");
    if ((rc = mbq_schema_note(t, "%starget '%s' was missing from BigQuery (cursor %s was "
                                 "committed): reloaded in full (on_missing_target: reload)",
                              ctx->dry_run ? "would reload: " : "", tc->target,
                              t->committed.cursor_value)) < 0)
        return rc;
    t->target_lost = true;
    if (ctx->dry_run || !ctx->j)
        return 0;
    if ((rc = mbq_machine_restart_extract(ctx, t)) < 0 ||
        (rc = mbq_journal_table_set_cursor(ctx->j, tc->name, NULL, NULL, mbq_now_ms())) < 0)
        return rc;
    free(t->committed.cursor_value);
    t->committed.cursor_value = NULL;
    return 0;
}

/* Soft deletes add _mbq_deleted and _mbq_deleted_at to the target: a MySQL
 * column that maps to either name would be overwritten by the flag (or the
 * flag by it), so such a table is refused before anything runs. */
static int check_soft_delete_names(const table_job *t)
{
    if (t->tc->deletes != MBQ_DELETES_SOFT)
        return 0;
    for (size_t i = 0; i < t->src->n_columns; i++) {
        const mbq_column *c = &t->src->columns[i];
        const char *bq = c->bq_name ? c->bq_name : c->name;
        if (strcasecmp(bq, MBQ_DELETED_COLUMN) == 0 || strcasecmp(bq, MBQ_DELETED_AT_COLUMN) == 0)
            return mbq_error_set(MBQ_ESCHEMA,
                                 "table '%s': column '%s' has the BigQuery name '%s', which "
                                 "'deletes: soft' adds to the target for its flag: rename the "
                                 "column, or use 'deletes: hard'",
                                 t->tc->name, c->name, bq);
    }
    return 0;
}

int mbq_schema_check(sync_ctx *ctx, table_job *t)
{
    int rc;
    const mbq_table_config *tc = t->tc;
    const mbq_bigquery_config *bc = &ctx->cfg->bigquery;
    mbq_bq_table_info *target = NULL;
    mbq_bq_schema *to_add = NULL, *to_widen = NULL, *seen_added = NULL;
    json_object *prev = NULL;
    bool *rename_used = NULL;
    char *now_json = NULL;

    mbq_table_schema_free(t->src);
    t->src = NULL;
    mbq_bq_schema_free(t->stage_schema);
    mbq_bq_schema_free(t->load_schema);
    t->stage_schema = t->load_schema = NULL;
    t->rebuild = false;

    if ((rc = mbq_mysql_table_schema(&t->src, ctx->my, ctx->cfg->mysql.database, tc->name)) < 0)
        goto done;
    const char *cursor = tc->mode == MBQ_MODE_FULL ? NULL : tc->updated_column;
    /* A key or cursor column dropped (or renamed) in MySQL: the rows in
     * BigQuery can no longer be matched or windowed the way they were, so
     * the table stops with what to do, whatever the policy. */
    const char *gone = cursor && !mbq_table_schema_column(t->src, cursor) ? cursor : NULL;
    bool gone_is_key = false;
    for (size_t i = 0; !gone && i < tc->n_primary_key; i++) {
        if (!mbq_table_schema_column(t->src, tc->primary_key[i])) {
            gone = tc->primary_key[i];
            gone_is_key = true;
        }
    }
    if (gone) {
        if ((rc = event(ctx, t, gone_is_key ? "schema.key_changed" : "schema.cursor_changed", gone,
                        NULL, NULL, "stopped", "the column is gone from MySQL")) < 0)
            goto done;
        rc = mbq_error_set(MBQ_ESCHEMA,
                           "table '%s': %s column '%s' is gone from MySQL, so mbq stops. To "
                           "recover: set '%s' in the config to a column the table has%s, then "
                           "run 'mbq-state reset %s --full --yes' for a full resync",
                           tc->name, gone_is_key ? "primary key" : "cursor", gone,
                           gone_is_key ? "primary_key" : "updated_column",
                           gone_is_key ? "" : " (or 'mode: full')", tc->name);
        goto done;
    }
    if ((rc = mbq_mysql_check_table(&t->kind, t->src, (const char *const *)tc->primary_key,
                                    tc->n_primary_key, cursor)) < 0 ||
        (rc = check_soft_delete_names(t)) < 0)
        goto done;
    /* Only an upsert needs a unique key; a full refresh copies the rows as
     * they are, duplicates included. */
    bool unique = !cursor;
    if (cursor && (rc = mbq_mysql_key_is_unique(&unique, ctx->my, t->src,
                                      (const char *const *)tc->primary_key, tc->n_primary_key)) <
        0)
        goto done;
    if (!unique) {
        mbq_buf keys = MBQ_BUF_INIT;
        for (size_t i = 0; i < tc->n_primary_key; i++)
            mbq_buf_printf(&keys, "%s'%s'", i ? ", " : "", tc->primary_key[i]);
        rc = mbq_error_set(MBQ_ESCHEMA,
                           "table '%s': primary_key (%s) is not guaranteed unique in MySQL (no "
                           "PRIMARY KEY or UNIQUE index on exactly these NOT NULL columns), so "
                           "it may hold duplicate keys, and an upsert by it would merge distinct "
                           "rows into one: mbq stops. Add such an index, or configure the "
                           "table's real key",
                           tc->name, mbq_buf_cstr(&keys));
        mbq_buf_free(&keys);
        goto done;
    }
    const char *kind_name = t->kind == MBQ_CURSOR_INTEGER     ? "integer"
                            : t->kind == MBQ_CURSOR_TIMESTAMP ? "timestamp"
                                                              : NULL;
    if (kind_name && t->committed.cursor_kind && t->committed.cursor_value &&
        strcmp(kind_name, t->committed.cursor_kind) != 0) {
        if ((rc = event(ctx, t, "schema.cursor_changed", tc->updated_column,
                        t->committed.cursor_kind, kind_name, "stopped", NULL)) < 0)
            goto done;
        rc = mbq_error_set(MBQ_ESCHEMA,
                           "table '%s': cursor column '%s' is now of %s kind, the committed "
                           "cursor '%s' is %s; run 'mbq-state reset %s --full --yes' (or "
                           "--cursor VALUE) to recover",
                           tc->name, tc->updated_column, kind_name, t->committed.cursor_value,
                           t->committed.cursor_kind, tc->name);
        goto done;
    }

    if ((rc = mbq_bq_schema_new(&t->stage_schema)) < 0 || (rc = mbq_bq_schema_new(&to_add)) < 0)
        goto done;
    for (size_t i = 0; i < t->src->n_columns; i++) {
        const mbq_column *c = &t->src->columns[i];
        /* Every column NULLABLE: zero dates become NULL, and a MySQL column
         * made NULL-able later needs no BigQuery change. */
        if ((rc = mbq_bq_schema_add(t->stage_schema, c->bq_name, mbq_bq_type_name(c->map.bq_type),
                                    MBQ_BQ_NULLABLE, NULL)) < 0)
            goto done;
    }

    if (t->committed.source_schema)
        prev = json_tokener_parse(t->committed.source_schema);
    if ((rc = check_key_and_cursor(ctx, t, prev)) < 0)
        goto done;
    if (!(now_json = schema_json(t->src, t))) {
        rc = MBQ_ENOMEM;
        goto done;
    }
    t->schema_changed_since_extract =
        t->committed.source_schema && strcmp(t->committed.source_schema, now_json) != 0;

    /* Changes of the MySQL side since the last sync: type changes that keep
     * the mapping, drops. */
    json_object *pcols = NULL;
    if (prev && !json_object_object_get_ex(prev, "columns", &pcols))
        pcols = NULL;
    size_t n_prev = pcols ? json_object_array_length(pcols) : 0;
    for (size_t i = 0; i < n_prev; i++) {
        json_object *pc = json_object_array_get_idx(pcols, i);
        const char *name = jget(pc, "name");
        const mbq_column *c = name ? mbq_table_schema_column(t->src, name) : NULL;
        if (!c) {
            if ((rc = event(ctx, t, "schema.drop_column", name, jget(pc, "type"), NULL, "kept",
                            "kept in BigQuery with its history; NULL in new rows")) < 0 ||
                (rc = mbq_schema_note(t, "dropped column '%s' (kept in BigQuery, NULL from now on)",
                                      name)) < 0)
                goto done;
            mbq_log(MBQ_LOG_WARN, tc->name, "schema-check",
                    "column '%s' was dropped in MySQL: kept in BigQuery, NULL in new rows", name);
        } else if (jget(pc, "type") && strcmp(jget(pc, "type"), c->column_type) != 0 &&
                   jget(pc, "bq_type") &&
                   strcmp(jget(pc, "bq_type"), mbq_bq_type_name(c->map.bq_type)) == 0) {
            if ((rc = event(ctx, t, "schema.type_change", c->name, jget(pc, "type"),
                            c->column_type, "compatible", "the BigQuery type stays the same")) < 0 ||
                (rc = mbq_schema_note(t, "column '%s' changed type %s -> %s (same BigQuery type)",
                                      c->name, jget(pc, "type"), c->column_type)) < 0)
                goto done;
        }
    }
    if (n_prev && !(rename_used = mbq_calloc(n_prev, sizeof *rename_used))) {
        rc = MBQ_ENOMEM;
        goto done;
    }

    rc = mbq_bq_table_get(&target, ctx->bq, bc->dataset, tc->target);
    if (rc == MBQ_ENOTFOUND && cursor && t->committed.cursor_value) {
        if ((rc = target_lost(ctx, t)) < 0)
            goto done;
        rc = MBQ_ENOTFOUND; /* reload: created below, then loaded whole */
    }
    if (rc == MBQ_ENOTFOUND) {
        t->target_rows = 0;
        if (ctx->dry_run) {
            rc = mbq_schema_note(t, "would create table '%s' with %zu columns", tc->target,
                                 t->stage_schema->n_fields);
            if (rc == 0)
                rc = mbq_bq_schema_new(&t->load_schema);
            goto done;
        }
        mbq_bq_table_options to = MBQ_BQ_TABLE_OPTIONS_INIT;
        const mbq_column *pcol = tc->partition_by ? mbq_table_schema_column(t->src, tc->partition_by)
                                                  : NULL;
        if (tc->partition_by && !pcol) {
            rc = mbq_error_set(MBQ_ECONFIG, "table '%s': partition_by column '%s' does not exist",
                               tc->name, tc->partition_by);
            goto done;
        }
        to.partition_field = pcol ? pcol->bq_name : NULL;
        to.partition_type = pcol ? (tc->partition_type ? tc->partition_type : "DAY") : NULL;
        /* cluster_by names MySQL columns; BigQuery knows them by their
         * mapped names (README "Column names"), like partition_by. */
        const char *cluster[4];
        for (size_t i = 0; i < tc->n_cluster_by && i < 4; i++) {
            const mbq_column *cc = mbq_table_schema_column(t->src, tc->cluster_by[i]);
            if (!cc) {
                rc = mbq_error_set(MBQ_ECONFIG, "table '%s': cluster_by column '%s' does not exist",
                                   tc->name, tc->cluster_by[i]);
                goto done;
            }
            cluster[i] = cc->bq_name;
        }
        to.clustering = cluster;
        to.n_clustering = tc->n_cluster_by < 4 ? tc->n_cluster_by : 4;
        rc = mbq_bq_table_create(ctx->bq, bc->dataset, tc->target, t->stage_schema, &to);
        if (rc < 0 && rc != MBQ_EEXISTS)
            goto done;
        mbq_log(MBQ_LOG_INFO, tc->name, "schema-check", "created target table '%s'", tc->target);
        if ((rc = event(ctx, t, "schema.create_table", NULL, NULL, NULL, "created", tc->target)) < 0)
            goto done;
        rc = mbq_bq_table_get(&target, ctx->bq, bc->dataset, tc->target);
    }
    if (rc < 0)
        goto done;
    t->target_rows = target->num_rows;

    /* Each MySQL column against the target: missing, widenable, or a type
     * BigQuery cannot change in place. */
    if ((rc = mbq_bq_schema_new(&to_widen)) < 0 || (rc = mbq_bq_schema_new(&seen_added)) < 0)
        goto done;
    const mbq_bq_field *bad = NULL, *bad_have = NULL;
    size_t n_bad = 0;
    for (size_t i = 0; i < t->stage_schema->n_fields; i++) {
        const mbq_bq_field *want = &t->stage_schema->fields[i];
        const mbq_bq_field *have = mbq_bq_schema_find(target->schema, want->name);
        if (!have)
            rc = mbq_bq_schema_add(to_add, want->name, want->type, MBQ_BQ_NULLABLE, NULL);
        else if (strcmp(have->type, want->type) == 0)
            continue;
        else if (bq_can_widen(have->type, want->type))
            rc = mbq_bq_schema_add(to_widen, want->name, want->type, MBQ_BQ_NULLABLE, NULL);
        else if (n_bad++ == 0) {
            bad = want;
            bad_have = have;
        }
        if (rc < 0)
            goto done;
    }

    if (n_bad > 0 && tc->on_incompatible_change == MBQ_POLICY_REBUILD) {
        rc = plan_rebuild(ctx, t, target, to_add, to_widen, pcols, rename_used);
        goto done;
    }
    if (n_bad > 0) {
        if ((rc = event(ctx, t, "schema.type_change", bad->name, bad_have->type, bad->type,
                        "stopped", "BigQuery cannot change this type in place")) < 0)
            goto done;
        rc = mbq_error_set(MBQ_ESCHEMA,
                           "table '%s': column '%s' changed type: BigQuery has %s, MySQL now "
                           "maps to %s, which BigQuery cannot alter in place%s. To recover: set "
                           "'on_incompatible_change: rebuild' for this table (a full reload "
                           "with the new schema), or drop or rename the target table '%s' in "
                           "BigQuery, then run 'mbq-state reset %s --full --yes' to resync it",
                           tc->name, bad->name, bad_have->type, bad->type,
                           n_bad > 1 ? " (and other columns changed too)" : "", tc->target,
                           tc->name);
        goto done;
    }

    /* Changes an interrupted run applied in BigQuery but never journaled
     * (killed at 'schema-check.altered'): the journaled MySQL schema lacks
     * them, the target has them already. Journaled now (once), and added
     * columns are proven queryable like the ones added in this run. */
    for (size_t i = 0; pcols && i < t->src->n_columns; i++) {
        const mbq_column *c = &t->src->columns[i];
        const char *want_type = mbq_bq_type_name(c->map.bq_type);
        const mbq_bq_field *have = mbq_bq_schema_find(target->schema, c->bq_name);
        json_object *pc = prev_column(pcols, c->name);
        if (!have || strcmp(have->type, want_type) != 0)
            continue;
        if (!pc) {
            if ((rc = mbq_bq_schema_add(seen_added, c->bq_name, want_type, MBQ_BQ_NULLABLE,
                                        NULL)) < 0 ||
                (rc = event(ctx, t, "schema.add_column", c->bq_name, NULL, want_type, "added",
                            "found already added in BigQuery")) < 0 ||
                (rc = mbq_schema_note(t, "added column '%s' %s (found already in BigQuery)",
                                      c->bq_name, want_type)) < 0)
                goto done;
        } else if (jget(pc, "bq_type") && strcmp(jget(pc, "bq_type"), want_type) != 0 &&
                   bq_can_widen(jget(pc, "bq_type"), want_type)) {
            if ((rc = event(ctx, t, "schema.type_change", c->bq_name, jget(pc, "bq_type"),
                            want_type, "widened", "found already widened in BigQuery")) < 0 ||
                (rc = mbq_schema_note(t, "column '%s' widened %s -> %s (found already in "
                                         "BigQuery)",
                                      c->bq_name, jget(pc, "bq_type"), want_type)) < 0)
                goto done;
        }
    }

    for (size_t i = 0; i < to_widen->n_fields; i++) {
        const mbq_bq_field *want = &to_widen->fields[i];
        const mbq_bq_field *have = mbq_bq_schema_find(target->schema, want->name);
        if ((rc = mbq_schema_note(t, "%scolumn '%s' widened %s -> %s",
                                  ctx->dry_run ? "would widen: " : "", want->name, have->type,
                                  want->type)) < 0)
            goto done;
        if (ctx->dry_run)
            continue;
        if ((rc = alter_type(ctx, t, want->name, want->type)) < 0) {
            rc = mbq_error_set(MBQ_ESCHEMA,
                               "table '%s': cannot widen column '%s' of '%s' from %s to %s in "
                               "BigQuery (%s); no rows were loaded. The local BigQuery emulator "
                               "does not support ALTER COLUMN SET DATA TYPE (README, emulator "
                               "divergences); BigQuery does",
                               tc->name, want->name, tc->target, have->type, want->type,
                               mbq_error_last());
            goto done;
        }
        /* Killed here, the next run finds the column widened in BigQuery
         * but not in the journaled schema, and journals it then. */
        mbq_fault_point("schema-check.altered");
        if ((rc = event(ctx, t, "schema.type_change", want->name, have->type, want->type,
                        "widened", NULL)) < 0)
            goto done;
        mbq_log(MBQ_LOG_INFO, tc->name, "schema-check", "widened column '%s' %s -> %s",
                want->name, have->type, want->type);
    }

    if (to_add->n_fields > 0) {
        if ((rc = note_added(ctx, t, to_add, pcols, rename_used, ctx->dry_run ? "would add: " : "",
                             "")) < 0)
            goto done;
        if (!ctx->dry_run) {
            size_t added = 0;
            if ((rc = mbq_bq_table_add_columns(ctx->bq, &added, bc->dataset, tc->target, to_add)) <
                0)
                goto done;
            /* Killed here, the next run finds the columns in BigQuery but
             * not in the journaled schema, and journals them then. */
            mbq_fault_point("schema-check.altered");
            for (size_t i = 0; i < to_add->n_fields; i++) {
                if ((rc = event(ctx, t, "schema.add_column", to_add->fields[i].name, NULL,
                                to_add->fields[i].type, "added", NULL)) < 0)
                    goto done;
                mbq_log(MBQ_LOG_INFO, tc->name, "schema-check", "added column '%s' %s",
                        to_add->fields[i].name, to_add->fields[i].type);
            }
        }
    }
    for (size_t i = 0; !ctx->dry_run && i < to_add->n_fields; i++) {
        if ((rc = mbq_bq_schema_add(seen_added, to_add->fields[i].name, to_add->fields[i].type,
                                    MBQ_BQ_NULLABLE, NULL)) < 0)
            goto done;
    }
    if (seen_added->n_fields > 0 && (rc = verify_columns_queryable(ctx, t, seen_added)) < 0)
        goto done;

    /* A replace load writes the target's whole schema: its fields (dropped
     * columns included, so their history stays) plus the new ones. */
    if ((rc = mbq_bq_schema_new(&t->load_schema)) < 0)
        goto done;
    for (size_t i = 0; i < target->schema->n_fields; i++) {
        const mbq_bq_field *f = &target->schema->fields[i];
        const mbq_bq_field *w = mbq_bq_schema_find(t->stage_schema, f->name);
        if ((rc = mbq_bq_schema_add(t->load_schema, f->name, w ? w->type : f->type,
                                    MBQ_BQ_NULLABLE, NULL)) < 0)
            goto done;
    }
    for (size_t i = 0; i < to_add->n_fields; i++) {
        if (!mbq_bq_schema_find(t->load_schema, to_add->fields[i].name) &&
            (rc = mbq_bq_schema_add(t->load_schema, to_add->fields[i].name, to_add->fields[i].type,
                                    MBQ_BQ_NULLABLE, NULL)) < 0)
            goto done;
    }
    /* The replace load (WRITE_TRUNCATE_DATA, machine.c) keeps the table's
     * own schema; its job states the same one, definitions included. */
    if ((rc = mbq_bq_schema_carry(t->load_schema, target->schema)) < 0)
        goto done;
    if (!ctx->dry_run && ctx->j &&
        (rc = mbq_journal_table_set_schema(ctx->j, tc->name, now_json, mbq_now_ms())) < 0)
        goto done;
done:
    if (rc == 0 && t->rebuild && !ctx->dry_run && ctx->j)
        rc = mbq_journal_table_set_schema(ctx->j, tc->name, now_json, mbq_now_ms());
    if (prev)
        json_object_put(prev);
    free(now_json);
    free(rename_used);
    mbq_bq_schema_free(to_add);
    mbq_bq_schema_free(to_widen);
    mbq_bq_schema_free(seen_added);
    mbq_bq_table_info_free(target);
    return rc;
}
