/* Private to src/server: the change-data-capture part of the dashboard's
 * snapshot and health rule (dash_cdc.c), called from dash.c. */
#ifndef MBQ_DASH_CDC_H
#define MBQ_DASH_CDC_H

#include "mbq/server.h"

/* Read the stream, batches and cdc tables into d->cdc (inside the
 * caller's read transaction) and mark d's tables that are followed. */
int dash_cdc_read(mbq_dash *d, mbq_journal *j, const mbq_config *cfg);
void dash_cdc_free(mbq_dash *d);

bool dash_cdc_healthy(const mbq_dash *d, const mbq_dash_table *t, mbq_buf *why);
const char *dash_cdc_status(const mbq_dash *d, const mbq_dash_table *t);

/* /api/tables: `,"cdc":{...}` after a followed table's keys (nothing for
 * another table), and `,"cdc":{...}` (or null) for the follower at the top
 * level (api_cdc.c). */
int api_cdc_table_json(mbq_buf *b, const mbq_dash_table *t);
int api_cdc_stream_json(mbq_buf *b, const mbq_dash *d);

/* api.c's JSON pieces, shared with api_cdc.c: a string (secrets masked,
 * invalid UTF-8 replaced) or null; an ISO time or null for ms <= 0. */
int api_json_str(mbq_buf *b, const char *s);
int api_json_time(mbq_buf *b, int64_t ms);

#endif
