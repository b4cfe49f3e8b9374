/* Shared by backfill.c (plan, shadow, swap) and backfill_chunk.c (the
 * chunks and the workers that read and load them). Not a public interface. */
#ifndef MBQ_BACKFILL_INTERNAL_H
#define MBQ_BACKFILL_INTERNAL_H

#include "mbq/buf.h"
#include "mbq/journal.h"
#include "sync_internal.h"

/* <staging dir>/backfill.<table run id>: the table run's chunk files. */
int mbq_backfill_dir(mbq_buf *out, const sync_ctx *ctx, const table_job *t);

/* Remove a chunk's file and any part files cut from it. */
void mbq_backfill_remove_files(const mbq_backfill_chunk *c);

/* Read and load every chunk not loaded yet, on up to ctx->jobs connections;
 * c[] is updated (and journaled) as they go. 0 when all are loaded, else the
 * first error (the others stop taking chunks). */
int mbq_backfill_run_chunks(sync_ctx *ctx, table_job *t, const mbq_backfill *bf,
                            mbq_backfill_chunk *c, int n);

#endif
