/*
 * buf: a growable byte buffer.
 *
 * Invariant: after any successful call, data is either NULL (len == 0, never grown) or points to
 * cap bytes of which the first len are content and data[len] == '\0', so text can be used as a C
 * string. A failed call (-ENOMEM) leaves the buffer as it was. Not thread-safe.
 */
#ifndef KVSFS_BUF_H
#define KVSFS_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

/* Empties b without freeing storage. */
void buf_reset(struct buf *b);
/* Frees storage; b is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Ensures room for extra more bytes plus the NUL. Returns 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
/* Appends n bytes. Returns 0 or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Appends a C string. Returns 0 or -ENOMEM. */
int buf_appendz(struct buf *b, const char *s);
/* Appends one byte. Returns 0 or -ENOMEM. */
int buf_putc(struct buf *b, char c);
/* Appends formatted text. Returns 0, -ENOMEM or -EINVAL (bad format). */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Returns the content as a malloc'd NUL-terminated string owned by the caller (never NULL unless
 * out of memory) and leaves b empty. */
char *buf_steal(struct buf *b);
/* Returns b's text, or "" when b never grew; the pointer is valid until b changes. */
const char *buf_str(const struct buf *b);

#endif
