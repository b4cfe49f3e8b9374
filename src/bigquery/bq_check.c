/* Permission probes for `mbq check` (see mbq/bq.h): what the principal may
 * do, proved by doing the least that needs each permission. */
#include <stdio.h>
#include <string.h>

#include "bq_internal.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "mbq/banned.h"

int mbq_bq_dry_run(mbq_bq *bq, long *http_status, const char *sql)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, b = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    char id[37], job_id[64];
    mbq_uuid(id);
    snprintf(job_id, sizeof job_id, "mbq_check_%s", id);
    *http_status = 0;
    /* configuration.dryRun: BigQuery validates the query and the caller's
     * bigquery.jobs.create on the project, runs nothing and stores no job
     * ("Estimate query costs", jobs.insert). A job reference is given: the
     * emulator fails a dry run without one (EMULATOR.md 8). */
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/jobs")) < 0 || (rc = mbq_buf_putc(&b, '{')) < 0 ||
        (rc = job_reference(&b, bq, job_id, bq->location)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"configuration\":{\"dryRun\":true,\"query\":{\"query\":")) < 0 ||
        (rc = bq_json_put_str(&b, sql)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"useLegacySql\":false}}}")) < 0)
        goto done;
    mbq_http_body hb;
    bq_json_body(&hb, &b);
    bq_req r = {"POST", url.ptr, "application/json", &hb, NULL, "dry-run query", true, false};
    rc = bq_call(bq, &resp, &r);
    *http_status = resp.status;
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&b);
    return rc;
}

int mbq_bq_probe_table_write(mbq_bq *bq, long *http_status, const char *dataset)
{
    int rc;
    mbq_buf url = MBQ_BUF_INIT, b = MBQ_BUF_INIT, what = MBQ_BUF_INIT;
    mbq_http_response resp = MBQ_HTTP_RESPONSE_INIT;
    char id[37], table[64];
    mbq_uuid(id);
    for (char *p = id; *p; p++)
        if (*p == '-')
            *p = '_';
    snprintf(table, sizeof table, "_mbq_check_%s", id);
    *http_status = 0;
    /* tables.insert needs bigquery.tables.create on the dataset, tables.delete
     * bigquery.tables.delete: what roles/bigquery.dataEditor grants and what
     * every sync does with its staging tables. The table expires in an hour
     * (expirationTime) should the delete not happen. */
    if ((rc = bq_url(&url, bq, "/bigquery/v2", "/datasets/%s/tables", dataset)) < 0 ||
        (rc = mbq_buf_printf(&what, "creating a scratch table in dataset '%s'", dataset)) < 0 ||
        (rc = mbq_buf_puts(&b, "{\"tableReference\":{\"projectId\":")) < 0 ||
        (rc = bq_json_put_str(&b, bq->project)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"datasetId\":")) < 0 || (rc = bq_json_put_str(&b, dataset)) < 0 ||
        (rc = mbq_buf_puts(&b, ",\"tableId\":")) < 0 || (rc = bq_json_put_str(&b, table)) < 0 ||
        (rc = mbq_buf_printf(&b, "},\"expirationTime\":\"%lld\",\"schema\":{\"fields\":"
                                 "[{\"name\":\"x\",\"type\":\"INT64\"}]}}",
                             (long long)(mbq_now_ms() + 3600 * 1000))) < 0)
        goto done;
    mbq_http_body hb;
    bq_json_body(&hb, &b);
    bq_req r = {"POST", url.ptr, "application/json", &hb, NULL, what.ptr, true, false};
    rc = bq_call(bq, &resp, &r);
    *http_status = resp.status;
    if (rc < 0)
        goto done;
    rc = mbq_bq_table_delete(bq, dataset, table);
    if (rc < 0)
        *http_status = strstr(mbq_error_last(), "(HTTP 403)") ? 403 : 0;
done:
    mbq_http_response_free(&resp);
    mbq_buf_free(&url);
    mbq_buf_free(&b);
    mbq_buf_free(&what);
    return rc;
}
