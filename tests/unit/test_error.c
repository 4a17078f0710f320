/* Unit tests for awserr: error body parsing (JSON header/body/__type/namespace, XML, garbage,
 * empty) and the errno table (5xx and timeouts are never ENOENT). */
#include <curl/curl.h>
#include <errno.h>
#include <string.h>

#include "check.h"
#include "kvsfs/awserr.h"

static int parse(struct awserr *e, int status, const char *hdr, const char *body)
{
	return awserr_parse(e, status, hdr, NULL, body, body ? strlen(body) : 0);
}

static void test_json_forms(void)
{
	struct awserr e;
	int rc = parse(&e, 404, "ResourceNotFoundException:http://internal.amazon.com/coral/",
		       "{\"Message\":\"The requested stream is not found or not active.\"}");
	CHECK_INT(rc, -ENOENT, "header type cut at ':' -> ENOENT");
	CHECK_STR(e.type, "ResourceNotFoundException", "type from header");
	CHECK_STR(e.message, "The requested stream is not found or not active.", "Message");
	CHECK_INT(e.retryable, 0, "404 not retryable");

	parse(&e, 400, NULL, "{\"__type\":\"ClientLimitExceededException\",\"Message\":\"slow\"}");
	CHECK_STR(e.type, "ClientLimitExceededException", "__type from body");
	CHECK_INT(e.err, EAGAIN, "throttling -> EAGAIN");
	CHECK(e.retryable && e.throttled, "throttling retryable and flagged");

	parse(&e, 400, NULL, "{\"__type\":\"com.amazonaws.kinesisvideo#InvalidArgumentException\","
			     "\"message\":\"bad\"}");
	CHECK_STR(e.type, "InvalidArgumentException", "namespace# prefix stripped");
	CHECK_STR(e.message, "bad", "lower-case message");
	CHECK_INT(e.err, EINVAL, "InvalidArgument -> EINVAL");

	parse(&e, 403, NULL, "{\"message\":\"Signature expired: 20240101T000000Z is now earlier\"}");
	CHECK_STR(e.type, "", "no type in SigV4 front-end error");
	CHECK_INT(e.err, EACCES, "403 -> EACCES");

	parse(&e, 400, NULL, "{\"code\":\"ValidationException\"}");
	CHECK_STR(e.type, "ValidationException", "type from code");
	CHECK_INT(e.err, EINVAL, "ValidationException -> EINVAL");

	parse(&e, 400, "NotAuthorizedException", "{\"__type\":\"InvalidArgumentException\"}");
	CHECK_STR(e.type, "NotAuthorizedException", "header wins over body");

	parse(&e, 400, "", "{\"__type\":\"ResourceInUseException\",\"Message\":null}");
	CHECK_STR(e.type, "ResourceInUseException", "empty header ignored");
	CHECK_STR(e.message, "", "null message ignored");
	CHECK_INT(e.err, EBUSY, "ResourceInUse -> EBUSY");

	parse(&e, 400, NULL, "{\"__type\":\"X\",\"Message\":\"line1\nline2\\u0007\"}");
	CHECK(strchr(e.message, '\n') == NULL, "control characters sanitised");

	char big[3000];
	memset(big, 'a', sizeof(big));
	memcpy(big, "{\"Message\":\"", 12);
	memcpy(big + sizeof(big) - 3, "\"}", 3);
	parse(&e, 400, NULL, big);
	CHECK_INT(strlen(e.message), AWSERR_MSG_MAX - 1, "long message truncated");

	struct awserr r;
	awserr_parse(&r, 404, NULL, "req-42", "{}", 2);
	CHECK_STR(r.request_id, "req-42", "request id kept");
	CHECK_INT(r.err, ENOENT, "bare 404 -> ENOENT");
}

static void test_xml_forms(void)
{
	struct awserr e;
	parse(&e, 404, NULL, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey"
			     "</Code><Message>The specified key does not exist.</Message><Key>a"
			     "</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>");
	CHECK_STR(e.type, "NoSuchKey", "XML code");
	CHECK_STR(e.message, "The specified key does not exist.", "XML message");
	CHECK_STR(e.request_id, "4442587FB7D0A2F9", "XML request id");
	CHECK_INT(e.err, ENOENT, "NoSuchKey -> ENOENT");

	parse(&e, 503, NULL, "<Error><Code>SlowDown</Code><Message>Reduce &amp; retry &lt;now&gt;"
			     " &#65;&#x42;</Message></Error>");
	CHECK_STR(e.message, "Reduce & retry <now> AB", "entities decoded");
	CHECK_INT(e.err, EAGAIN, "503 SlowDown -> EAGAIN");
	CHECK(e.retryable, "SlowDown retryable");

	parse(&e, 403, NULL, "  <Error>\r\n <Code >AccessDenied</Code>\n<Message/></Error>");
	CHECK_STR(e.type, "AccessDenied", "spaces in tags tolerated");
	CHECK_INT(e.err, EACCES, "AccessDenied -> EACCES");

	parse(&e, 400, NULL, "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
			     "<Message>Rate exceeded</Message></Error></ErrorResponse>");
	CHECK_STR(e.type, "Throttling", "query-API error");
	CHECK(e.throttled, "Throttling is throttling");

	parse(&e, 400, NULL, "<Error><Code>EntityTooLarge</Code><Message>Your proposed upl");
	CHECK_STR(e.type, "EntityTooLarge", "truncated XML still read");
	CHECK_INT(e.err, EFBIG, "EntityTooLarge -> EFBIG");
	CHECK_STR(e.message, "Your proposed upl", "truncated message");

	char t[AWSERR_TYPE_MAX] = "", m[AWSERR_MSG_MAX] = "", q[AWSERR_REQID_MAX] = "";
	CHECK(!awserr_parse_xml_body("<html><body>502</body></html>", 29, t, sizeof(t), m,
				     sizeof(m), q, sizeof(q)), "HTML is not an AWS error");
	CHECK(!awserr_parse_xml_body("<Code", 5, t, sizeof(t), m, sizeof(m), q, sizeof(q)),
	      "unterminated tag");
	CHECK(awserr_parse_xml_body("<Error></Error>", 15, t, sizeof(t), m, sizeof(m), q,
				    sizeof(q)), "empty <Error> recognised");
}

static void test_garbage(void)
{
	struct awserr e;
	parse(&e, 500, NULL, "<html>Internal error</html>");
	CHECK_INT(e.err, EIO, "HTML 500 -> EIO");
	CHECK(e.retryable, "500 retryable");
	parse(&e, 502, NULL, "\x01\x02\xff garbage {");
	CHECK_INT(e.err, EIO, "garbage 502 -> EIO");
	CHECK_STR(e.type, "", "no type from garbage");
	parse(&e, 400, NULL, "");
	CHECK_INT(e.err, EINVAL, "empty 400 -> EINVAL");
	parse(&e, 404, NULL, NULL);
	CHECK_INT(e.err, ENOENT, "empty 404 -> ENOENT");
	parse(&e, 400, NULL, "[1,2,3]");
	CHECK_INT(e.err, EINVAL, "JSON array body -> status fallback");
	parse(&e, 400, NULL, "{\"__type\":5,\"Message\":[]}");
	CHECK_STR(e.type, "", "non-string __type ignored");
	parse(&e, 400, NULL, "{\"__type\":\"\",\"code\":\"SlowDown\"}");
	CHECK_STR(e.type, "SlowDown", "empty __type falls to code");
	parse(&e, 301, NULL, "<Error><Code>PermanentRedirect</Code></Error>");
	CHECK_INT(e.err, EIO, "3xx -> EIO");
	parse(&e, 400, "#:", NULL);
	CHECK_STR(e.type, "", "degenerate header");
}

static void test_table(void)
{
	/* 5xx and timeouts are NEVER ENOENT */
	static const int s5[] = { 500, 502, 503, 504, 501, 599 };
	for (size_t i = 0; i < sizeof(s5) / sizeof(s5[0]); i++) {
		int e1 = awserr_errno_for(s5[i], "ResourceNotFoundException", 0);
		int e2 = awserr_errno_for(s5[i], "NoSuchKey", 0);
		int e3 = awserr_errno_for(s5[i], NULL, 0);
		CHECK(e1 != ENOENT && e2 != ENOENT && e3 != ENOENT, "%d never ENOENT", s5[i]);
	}
	CHECK_INT(awserr_errno_for(500, NULL, 0), EIO, "500 -> EIO");
	CHECK_INT(awserr_errno_for(504, NULL, 0), ETIMEDOUT, "504 -> ETIMEDOUT");
	CHECK_INT(awserr_errno_for(404, "ResourceNotFoundException", CURLE_OPERATION_TIMEDOUT),
		  ETIMEDOUT, "timeout wins over any body");
	CHECK_INT(awserr_errno_for(0, NULL, CURLE_OPERATION_TIMEDOUT), ETIMEDOUT, "timeout");
	CHECK_INT(awserr_errno_for(0, NULL, CURLE_COULDNT_CONNECT), ECONNREFUSED, "refused");
	CHECK_INT(awserr_errno_for(0, NULL, CURLE_COULDNT_RESOLVE_HOST), EHOSTUNREACH, "DNS");
	CHECK_INT(awserr_errno_for(200, NULL, CURLE_PARTIAL_FILE), EIO, "partial body -> EIO");
	CHECK_INT(awserr_errno_for(0, NULL, CURLE_PEER_FAILED_VERIFICATION), EIO, "TLS -> EIO");
	CHECK_INT(awserr_errno_for(0, NULL, CURLE_OUT_OF_MEMORY), ENOMEM, "ENOMEM");
	CHECK_INT(awserr_errno_for(200, NULL, 0), 0, "200 -> 0");

	static const struct { int st; const char *type; int err; } rows[] = {
		{ 404, "ResourceNotFoundException", ENOENT }, { 404, "NoSuchKey", ENOENT },
		{ 404, "NoSuchBucket", ENOENT }, { 404, NULL, ENOENT },
		{ 403, "AccessDenied", EACCES }, { 401, "NotAuthorizedException", EACCES },
		{ 403, "SignatureDoesNotMatch", EACCES }, { 403, "ExpiredToken", EACCES },
		{ 403, "ExpiredTokenException", EACCES }, { 403, "InvalidAccessKeyId", EACCES },
		{ 401, NULL, EACCES }, { 403, NULL, EACCES },
		{ 400, "InvalidArgumentException", EINVAL }, { 400, "InvalidArgument", EINVAL },
		{ 400, NULL, EINVAL }, { 400, "ClientLimitExceededException", EAGAIN },
		{ 400, "ConnectionLimitExceededException", EAGAIN }, { 503, "SlowDown", EAGAIN },
		{ 400, "ThrottlingException", EAGAIN }, { 400, "RequestLimitExceeded", EAGAIN },
		{ 429, NULL, EAGAIN }, { 400, "EntityTooLarge", EFBIG }, { 413, NULL, EFBIG },
		{ 400, "NoDataRetentionException", ENODATA },
		{ 400, "UnsupportedStreamMediaTypeException", EMEDIUMTYPE },
		{ 400, "MissingCodecPrivateDataException", EMEDIUMTYPE },
		{ 400, "InvalidCodecPrivateDataException", EMEDIUMTYPE },
		{ 400, "InvalidMediaFrameException", EBADMSG },
		{ 400, "ResourceInUseException", EBUSY },
		{ 400, "VersionMismatchException", ESTALE },
		{ 400, "AccountStreamLimitExceededException", EDQUOT },
		{ 400, "TagsPerResourceExceededLimitException", EDQUOT },
		{ 412, NULL, ESTALE }, { 400, "SomethingNew", EINVAL },
		{ 418, NULL, EINVAL }, { 500, "InternalFailure", EIO },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		CHECK_INT(awserr_errno_for(rows[i].st, rows[i].type, 0), rows[i].err,
			  "table: %d %s", rows[i].st, rows[i].type ? rows[i].type : "-");

	/* retryable classification */
	CHECK(awserr_retryable(503, NULL, 0), "503 retryable");
	CHECK(awserr_retryable(500, "InternalFailure", 0), "InternalFailure retryable");
	CHECK(awserr_retryable(429, NULL, 0), "429 retryable");
	CHECK(awserr_retryable(400, "ClientLimitExceededException", 0), "ClientLimit retryable");
	CHECK(awserr_retryable(400, "RequestTimeout", 0), "S3 RequestTimeout retryable");
	CHECK(!awserr_retryable(400, "InvalidArgumentException", 0), "InvalidArgument not");
	CHECK(!awserr_retryable(400, "AccountStreamLimitExceededException", 0), "quota not");
	CHECK(!awserr_retryable(404, NULL, 0), "404 not");
	CHECK(!awserr_retryable(403, "ExpiredTokenException", 0), "403 not");
	CHECK(!awserr_retryable(501, NULL, 0), "501 not");
	CHECK(awserr_retryable(0, NULL, CURLE_COULDNT_CONNECT), "refused retryable");
	CHECK(awserr_retryable(0, NULL, CURLE_RECV_ERROR), "reset retryable");
	CHECK(awserr_retryable(200, NULL, CURLE_PARTIAL_FILE), "partial retryable");
	CHECK(awserr_retryable(0, NULL, CURLE_GOT_NOTHING), "got nothing retryable");
	CHECK(awserr_retryable(0, NULL, CURLE_OPERATION_TIMEDOUT), "timeout retryable");
	CHECK(!awserr_retryable(0, NULL, CURLE_PEER_FAILED_VERIFICATION), "TLS verify not");
	CHECK(!awserr_retryable(0, NULL, CURLE_URL_MALFORMAT), "bad URL not");
	CHECK(awserr_is_throttle(400, "Throttling"), "Throttling prefix");
	CHECK(!awserr_is_throttle(503, NULL), "bare 503 is not throttling");
}

static void test_transport_and_format(void)
{
	struct awserr e;
	int rc = awserr_set_transport(&e, CURLE_RECV_ERROR, 200, "Connection reset by peer");
	CHECK_INT(rc, -EIO, "recv error -> -EIO");
	CHECK(e.retryable, "recv error retryable");
	char line[256];
	awserr_format(&e, line, sizeof(line));
	CHECK(strstr(line, "Connection reset") && strstr(line, "EIO"), "format transport");
	rc = awserr_set_errno(&e, ECANCELED, "callback");
	CHECK_INT(rc, -ECANCELED, "set_errno");
	CHECK_INT(e.retryable, 0, "set_errno not retryable");
	awserr_parse(&e, 404, "ResourceNotFoundException", "rid", "{\"Message\":\"gone\"}", 18);
	awserr_format(&e, line, sizeof(line));
	CHECK_STR(line, "HTTP 404 ResourceNotFoundException: gone (request id rid) -> ENOENT",
		  "format HTTP");
	awserr_format(&e, line, 8);
	CHECK_INT(strlen(line), 7, "format truncates");
	awserr_clear(&e);
	awserr_format(&e, line, sizeof(line));
	CHECK_STR(line, "no error", "format no error");
}

static void test_summary(void)
{
	struct awserr e;
	char line[300];
	static const char sig[] = "{\"message\":\"The request signature we calculated does not match "
		"the signature you provided. Check your AWS Secret Access Key and signing method.\\n\\n"
		"The Canonical String for this request should have been\\n'POST\\n/listStreams\\n'\"}";
	awserr_parse(&e, 403, "InvalidSignatureException", "rid", sig, strlen(sig));
	awserr_summary(&e, line, sizeof(line));
	CHECK_STR(line, "the credentials were rejected (InvalidSignatureException, HTTP 403): check "
		  "the secret access key", "summary of a signature mismatch");
	static const char xml[] = "<Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>";
	awserr_parse(&e, 403, NULL, NULL, xml, strlen(xml));
	awserr_summary(&e, line, sizeof(line));
	CHECK(strstr(line, "(SignatureDoesNotMatch, HTTP 403)") != NULL, "summary of S3's mismatch");
	static const char nf[] = "{\"Message\":\"Stream not found. More text\"}";
	awserr_parse(&e, 404, "ResourceNotFoundException", "rid", nf, strlen(nf));
	awserr_summary(&e, line, sizeof(line));
	CHECK_STR(line, "HTTP 404 ResourceNotFoundException: Stream not found. -> ENOENT",
		  "summary keeps the first sentence only");
	char longmsg[400], body[500];
	memset(longmsg, 'a', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	snprintf(body, sizeof(body), "{\"Message\":\"%s\"}", longmsg);
	awserr_parse(&e, 400, "InvalidArgumentException", NULL, body, strlen(body));
	awserr_summary(&e, line, sizeof(line));
	CHECK(strlen(line) < 200 && strstr(line, "...") && strstr(line, "EINVAL"), "summary cut");
	awserr_set_transport(&e, 7, 0, "Failed to connect to 127.0.0.1 port 1: Connection refused");
	awserr_summary(&e, line, sizeof(line));
	CHECK_STR(line, "transport error 7: Failed to connect to 127.0.0.1 port 1: Connection "
		  "refused -> ECONNREFUSED", "summary of a transport error");
	awserr_summary(&e, line, 10);
	CHECK_INT(strlen(line), 9, "summary truncates");
	awserr_clear(&e);
	awserr_summary(&e, line, sizeof(line));
	CHECK_STR(line, "no error", "summary of no error");
}

int main(void)
{
	test_json_forms();
	test_xml_forms();
	test_garbage();
	test_table();
	test_transport_and_format();
	test_summary();
	return check_done();
}
