/* Functions mbq code must not use (git's banned.h). Included last by every
 * source file through mbq/common.h. Use mbq_buf and the _r variants. */
#ifndef MBQ_BANNED_H
#define MBQ_BANNED_H

#define MBQ_BANNED(func) sorry_##func##_is_banned_in_mbq

#undef strcpy
#define strcpy(x, y) MBQ_BANNED(strcpy)
#undef strcat
#define strcat(x, y) MBQ_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) MBQ_BANNED(strncpy)
#undef sprintf
#define sprintf(...) MBQ_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) MBQ_BANNED(vsprintf)
#undef gmtime
#define gmtime(t) MBQ_BANNED(gmtime)
#undef localtime
#define localtime(t) MBQ_BANNED(localtime)
#undef strtok
#define strtok(x, y) MBQ_BANNED(strtok)

#endif
