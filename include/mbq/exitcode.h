/* The exit codes of `mbq` and `mbq-state`, documented in the README.
 * Where one fits, the value follows sysexits.h. */
#ifndef MBQ_EXITCODE_H
#define MBQ_EXITCODE_H

enum mbq_exit {
    MBQ_EXIT_OK = 0,           /* every table succeeded */
    MBQ_EXIT_TABLE_FAILED = 1, /* at least one table failed; the others ran */
    MBQ_EXIT_USAGE = 2,        /* bad arguments or invalid configuration */
    MBQ_EXIT_UNAVAILABLE = 69, /* EX_UNAVAILABLE: MySQL or BigQuery unreachable or refusing */
    MBQ_EXIT_SOFTWARE = 70,    /* EX_SOFTWARE: internal error (a bug) */
    MBQ_EXIT_IOERR = 74,       /* EX_IOERR: local disk or journal error */
    MBQ_EXIT_LOCKED = 75,      /* EX_TEMPFAIL: another run holds the state lock */
    MBQ_EXIT_NOPERM = 77,      /* EX_NOPERM: credentials refused */
};

/* The exit code for a failure of the whole command with error `err`. */
int mbq_exit_for_error(int err);

#endif
