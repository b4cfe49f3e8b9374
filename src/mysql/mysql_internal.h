/* Private to src/mysql: the connection object, the writer thread's state
 * and the functions shared by the files of the MySQL/MariaDB source
 * (mysql_source.c: connection; mysql_introspect.c: schema introspection;
 * mysql_writer.c: the writer thread; mysql_extract.c: the extraction).
 * Nothing outside src/mysql includes this header. */
#ifndef MBQ_MYSQL_INTERNAL_H
#define MBQ_MYSQL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mysql.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "mbq/buf.h"
#include "mbq/mysql_source.h"

struct mbq_mysql {
    MYSQL *my;
    char *where; /* host:port or socket */
    char *user;
};

#define NSLOTS 4
#define WRITE_BEHIND (8u << 20)

typedef struct writer {
    int fd;
    const char *path;  /* the temp file, for messages */
    bool compress;
    z_stream zs;
    bool zinit;
    unsigned char *zout;
    size_t zout_cap;
    EVP_MD_CTX *sha;
    uint64_t file_bytes, raw_bytes;
    uint64_t started_bytes; /* file bytes whose writeback was started */
    int (*sink)(void *ud, const void *data, size_t len); /* tap on the file's bytes */
    void *sink_ud;

    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* any change of the queues or flags */
    mbq_buf slot[NSLOTS];
    int full[NSLOTS];          /* FIFO of filled slots */
    size_t full_head, full_n;
    int free_[NSLOTS];         /* stack of empty slots */
    size_t free_n;
    bool closing;              /* main has submitted its last chunk */
    int err;                   /* first error of the writer thread */
    char *errmsg;
} writer;

/* Shared between the files named above (defined in one, used in another). */
int my_error(mbq_mysql *c, const char *what);
int put_literal(mbq_buf *b, mbq_mysql *c, const char *s);
int query_store(MYSQL_RES **res, mbq_mysql *c, const mbq_buf *sql);
int writer_start(writer *w, int fd, const char *path, bool compress, int level,
                 const mbq_extract_options *o);
mbq_buf *writer_get(writer *w);
void writer_submit(writer *w, mbq_buf *b);
int writer_finish(writer *w);
void writer_free(writer *w);

#endif
