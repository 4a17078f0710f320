/* Unit tests for util/buf. */
#include "check.h"
#include "kvsfs/buf.h"

int main(void)
{
	struct buf b = BUF_INIT;
	CHECK_STR(buf_str(&b), "", "empty buffer reads as empty string");
	CHECK(buf_appendz(&b, "abc") == 0, "append string");
	CHECK(buf_append(&b, "\0x", 2) == 0, "append bytes with NUL");
	CHECK_INT(b.len, 5, "length counts bytes");
	CHECK(b.data[5] == '\0', "always NUL-terminated");
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%04d", i);
	CHECK_INT(b.len, 5 + 4000, "printf growth");
	CHECK(memcmp(b.data + 5 + 4 * 999, "0999", 4) == 0, "printf content");
	buf_reset(&b);
	CHECK_INT(b.len, 0, "reset empties");
	buf_putc(&b, 'z');
	char *s = buf_steal(&b);
	CHECK_STR(s, "z", "steal returns content");
	CHECK(b.data == NULL && b.len == 0, "steal leaves buffer empty");
	free(s);
	char *e = buf_steal(&b);
	CHECK(e && e[0] == '\0', "steal of empty buffer gives empty string");
	free(e);
	buf_free(&b);
	return check_done();
}
