/* The BigQuery client's options from the config (see mbq/bq.h). One place,
 * so that every command talks to BigQuery with the same settings. */
#include "mbq/bq.h"
#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/util.h"
#include "mbq/banned.h"

void mbq_bq_options_from_config(mbq_bq_options *o, const mbq_bigquery_config *c)
{
    mbq_bq_options_init(o);
    o->project = c->project_id;
    /* Unset: the dataset's own location, read by mbq_bq_location_resolve,
     * never a silent "US" against a dataset elsewhere. */
    o->location = c->location_set ? c->location : NULL;
    o->endpoint = c->endpoint;
    o->credentials = c->credentials;
    o->impersonate = c->impersonate_service_account;
    o->job_timeout_ms = c->job_timeout_ms;
    o->request_timeout_ms = c->request_timeout_ms;
    o->max_retries = c->max_retries;
    o->retry_max_elapsed_ms = c->retry_max_elapsed_ms;
    o->upload_chunk_bytes = c->upload_chunk_bytes;
    o->multipart_max_bytes = c->multipart_max_bytes;
    o->tls_verify = c->tls_verify;
    o->ca_file = c->ca_file;
    /* Not given, an endpoint override means "no token" (emulators) unless
     * the config names a credentials file too: then the endpoint is a
     * private route to BigQuery (Private Service Connect, a proxy) and wants
     * the token. Without an override, Application Default Credentials.
     * Given, bigquery.auth decides (the file may come from
     * GOOGLE_APPLICATION_CREDENTIALS). */
    if (c->auth == MBQ_BIGQUERY_AUTH_SERVICE_ACCOUNT ||
        (c->auth == MBQ_BIGQUERY_AUTH_DEFAULT && c->endpoint && c->credentials))
        o->auth = MBQ_BQ_AUTH_SERVICE_ACCOUNT;
    else if (c->auth == MBQ_BIGQUERY_AUTH_ADC)
        o->auth = MBQ_BQ_AUTH_ADC;
    else if (c->auth == MBQ_BIGQUERY_AUTH_NONE)
        o->auth = MBQ_BQ_AUTH_NONE;
}

int mbq_bq_config_resolve_project(mbq_bigquery_config *c)
{
    int rc;
    mbq_bq *bq = NULL;
    mbq_bq_options o;
    if (c->project_id)
        return 0;
    mbq_bq_options_from_config(&o, c);
    if ((rc = mbq_bq_new(&bq, &o)) < 0)
        return rc;
    if (!(c->project_id = mbq_strdup(mbq_bq_project(bq))))
        rc = MBQ_ENOMEM;
    mbq_bq_free(bq);
    return rc;
}
