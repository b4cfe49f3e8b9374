/* libFuzzer harness for the config parser: any input must give either a
 * config or an MBQ_ECONFIG/MBQ_ENOMEM error with a message, never a crash,
 * a leak or a sanitizer report. Built with -DMBQ_FUZZ=ON (clang). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbq/config.h"
#include "mbq/error.h"
#include "mbq/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int env_done;
    if (!env_done) {
        /* Variables the corpus refers to, so that substitution paths run. */
        setenv("MBQ_FUZZ_SET", "value", 1);
        setenv("MBQ_FUZZ_PORT", "3306", 1);
        setenv("MBQ_FUZZ_EMPTY", "", 1);
        env_done = 1;
    }
    mbq_config *cfg = NULL;
    int rc = mbq_config_parse(&cfg, (const char *)data, size, "fuzz.yml");
    if (rc == 0) {
        /* project_id may be left out only against Google's endpoint, where
         * the credentials supply it (a key's project, the metadata server). */
        /* A config names tables, or patterns that find them at run time. */
        if (!cfg || (cfg->n_tables == 0 && cfg->n_patterns == 0) ||
            (cfg->n_tables > 0 && !cfg->tables[0].target) ||
            (!cfg->bigquery.project_id && cfg->bigquery.endpoint))
            abort();
        if (cfg->n_tables > 0)
            (void)mbq_config_table(cfg, cfg->tables[0].name);
    } else {
        if (cfg || (rc != MBQ_ECONFIG && rc != MBQ_ENOMEM) || !*mbq_error_last())
            abort();
        if (rc == MBQ_ECONFIG && strncmp(mbq_error_last(), "cannot load config 'fuzz.yml': ", 31))
            abort();
    }
    mbq_config_free(cfg);
    /* Secrets registered by the parse would pile up across inputs. */
    mbq_secret_clear();
    mbq_error_clear();
    return 0;
}
