/*
 * awserr: AWS error parsing and the errno table (see include/kvsfs/awserr.h and docs/ERRORS.md).
 *
 * Design:
 * - One static table (type_table) maps AWS error types to an errno plus flags (throttling,
 *   transient). awserr_errno_for() applies, in order: transport code, throttling, 5xx (EIO, never
 *   ENOENT), the type table, then the HTTP status. docs/ERRORS.md mirrors this file; keep both in
 *   step.
 * - Error bodies are untrusted: the JSON form is parsed with jansson under the caller's size
 *   bound; the XML form with xmlscan (the project's one XML scanner), taking the leaf text of
 *   the <Code>, <Message> and <RequestId> elements (a truncated body keeps what it holds; no
 *   recursion; the five XML entities and ASCII character references are decoded, nothing else).
 *   Every copied string is truncated to its fixed buffer (on a UTF-8 boundary) and control bytes
 *   become '?', so the struct is always safe to log.
 */
#include "kvsfs/awserr.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "kvsfs/xmlscan.h"

enum {
	F_THROTTLE = 1,  /* throttling: retry with backoff, EAGAIN when retries run out */
	F_TRANSIENT = 2, /* transient server-side failure: retry */
};

struct type_entry {
	const char *type;
	int err;
	unsigned flags;
	int prefix; /* 1: match any type starting with this text */
};

/* THE table of AWS error types. Order matters only for prefix entries (first match wins). */
static const struct type_entry type_table[] = {
	/* throttling (retried; EAGAIN after retries) */
	{ "ClientLimitExceededException", EAGAIN, F_THROTTLE, 0 },
	{ "ConnectionLimitExceededException", EAGAIN, F_THROTTLE, 0 },
	{ "SlowDown", EAGAIN, F_THROTTLE, 0 },
	{ "Throttling", EAGAIN, F_THROTTLE, 1 }, /* Throttling, ThrottlingException */
	{ "ThrottledException", EAGAIN, F_THROTTLE, 0 },
	{ "RequestThrottled", EAGAIN, F_THROTTLE, 1 },
	{ "RequestLimitExceeded", EAGAIN, F_THROTTLE, 0 },
	{ "TooManyRequestsException", EAGAIN, F_THROTTLE, 0 },
	{ "ProvisionedThroughputExceededException", EAGAIN, F_THROTTLE, 0 },
	{ "LimitExceededException", EAGAIN, F_THROTTLE, 0 },
	{ "BandwidthLimitExceeded", EAGAIN, F_THROTTLE, 0 },
	{ "EC2ThrottledException", EAGAIN, F_THROTTLE, 0 },
	{ "PriorRequestNotComplete", EAGAIN, F_THROTTLE, 0 },
	/* transient server-side failures (retried; EIO / ETIMEDOUT after retries) */
	{ "InternalFailure", EIO, F_TRANSIENT, 0 },
	{ "InternalError", EIO, F_TRANSIENT, 0 },
	{ "InternalServerError", EIO, F_TRANSIENT, 0 },
	{ "InternalServerException", EIO, F_TRANSIENT, 0 },
	{ "ServiceUnavailable", EIO, F_TRANSIENT, 0 },
	{ "ServiceUnavailableException", EIO, F_TRANSIENT, 0 },
	{ "RequestTimeout", ETIMEDOUT, F_TRANSIENT, 0 },
	{ "RequestTimeoutException", ETIMEDOUT, F_TRANSIENT, 0 },
	/* not found: ENOENT only because the server said so */
	{ "ResourceNotFoundException", ENOENT, 0, 0 },
	{ "NoSuchKey", ENOENT, 0, 0 },
	{ "NoSuchBucket", ENOENT, 0, 0 },
	{ "NoSuchUpload", ENOENT, 0, 0 },
	{ "NoSuchVersion", ENOENT, 0, 0 },
	{ "NotFound", ENOENT, 0, 0 },
	/* authentication / authorisation */
	{ "AccessDenied", EACCES, 0, 0 },
	{ "AccessDeniedException", EACCES, 0, 0 },
	{ "NotAuthorizedException", EACCES, 0, 0 },
	{ "SignatureDoesNotMatch", EACCES, 0, 0 },
	{ "InvalidSignatureException", EACCES, 0, 0 },
	{ "IncompleteSignature", EACCES, 0, 0 },
	{ "IncompleteSignatureException", EACCES, 0, 0 },
	{ "ExpiredToken", EACCES, 0, 0 },
	{ "ExpiredTokenException", EACCES, 0, 0 },
	{ "InvalidToken", EACCES, 0, 0 },
	{ "InvalidAccessKeyId", EACCES, 0, 0 },
	{ "InvalidClientTokenId", EACCES, 0, 0 },
	{ "UnrecognizedClientException", EACCES, 0, 0 },
	{ "MissingAuthenticationToken", EACCES, 0, 0 },
	{ "MissingAuthenticationTokenException", EACCES, 0, 0 },
	{ "RequestExpired", EACCES, 0, 0 },
	{ "RequestTimeTooSkewed", EACCES, 0, 0 },
	{ "AllAccessDisabled", EACCES, 0, 0 },
	{ "AccountProblem", EACCES, 0, 0 },
	/* invalid requests */
	{ "InvalidArgumentException", EINVAL, 0, 0 },
	{ "InvalidArgument", EINVAL, 0, 0 },
	{ "ValidationException", EINVAL, 0, 0 },
	{ "ValidationError", EINVAL, 0, 0 },
	{ "SerializationException", EINVAL, 0, 0 },
	{ "InvalidParameterValue", EINVAL, 0, 0 },
	{ "InvalidParameterException", EINVAL, 0, 0 },
	{ "InvalidRequest", EINVAL, 0, 0 },
	{ "InvalidResourceFormatException", EINVAL, 0, 0 },
	{ "MalformedXML", EINVAL, 0, 0 },
	{ "InvalidPart", EINVAL, 0, 0 },
	{ "InvalidPartOrder", EINVAL, 0, 0 },
	{ "InvalidRange", EINVAL, 0, 0 },
	{ "InvalidBucketName", EINVAL, 0, 0 },
	{ "MissingContentLength", EINVAL, 0, 0 },
	{ "EntityTooSmall", EINVAL, 0, 0 },
	/* sizes */
	{ "EntityTooLarge", EFBIG, 0, 0 },
	{ "MaxMessageLengthExceeded", EFBIG, 0, 0 },
	{ "MetadataTooLarge", EFBIG, 0, 0 },
	{ "RequestEntityTooLarge", EFBIG, 0, 0 },
	{ "KeyTooLongError", ENAMETOOLONG, 0, 0 },
	/* quotas (retrying is pointless) */
	{ "AccountStreamLimitExceededException", EDQUOT, 0, 0 },
	{ "DeviceStreamLimitExceededException", EDQUOT, 0, 0 },
	{ "StreamLimitExceededException", EDQUOT, 0, 0 },
	{ "TagsPerResourceExceededLimitException", EDQUOT, 0, 0 },
	{ "TooManyBuckets", EDQUOT, 0, 0 },
	/* state conflicts */
	{ "ResourceInUseException", EBUSY, 0, 0 },
	{ "OperationAborted", EBUSY, 0, 0 },
	{ "VersionMismatchException", ESTALE, 0, 0 },
	{ "PreconditionFailed", ESTALE, 0, 0 },
	{ "InvalidEndpointException", ESTALE, 0, 0 },
	{ "BucketAlreadyExists", EEXIST, 0, 0 },
	{ "BucketAlreadyOwnedByYou", EEXIST, 0, 0 },
	/* KVS media */
	{ "NoDataRetentionException", ENODATA, 0, 0 },
	{ "UnsupportedStreamMediaTypeException", EMEDIUMTYPE, 0, 0 },
	{ "MissingCodecPrivateDataException", EMEDIUMTYPE, 0, 0 },
	{ "InvalidCodecPrivateDataException", EMEDIUMTYPE, 0, 0 },
	{ "InvalidMediaFrameException", EBADMSG, 0, 0 },
	/* integrity and unsupported operations */
	{ "BadDigest", EIO, 0, 0 },
	{ "InvalidDigest", EIO, 0, 0 },
	{ "NotImplemented", ENOTSUP, 0, 0 },
	{ "MethodNotAllowed", ENOTSUP, 0, 0 },
	{ "UnsupportedOperation", ENOTSUP, 0, 0 },
};

static const struct type_entry *type_lookup(const char *type)
{
	if (!type || !*type)
		return NULL;
	for (size_t i = 0; i < sizeof(type_table) / sizeof(type_table[0]); i++) {
		const struct type_entry *t = &type_table[i];
		if (t->prefix ? strncmp(type, t->type, strlen(t->type)) == 0
			      : strcmp(type, t->type) == 0)
			return t;
	}
	return NULL;
}

/* Transport (libcurl) failures: errno and whether a repeat may succeed. */
static int transport_errno(int code, int *retry)
{
	*retry = 0;
	switch (code) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		*retry = 1;
		return EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		*retry = 1;
		return ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		*retry = 1;
		return ETIMEDOUT;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		*retry = 1;
		return EIO;
	case CURLE_OUT_OF_MEMORY:
		return ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return EINVAL;
	default: /* TLS verification, rewind failures, weird replies, callback aborts ... */
		return EIO;
	}
}

int awserr_is_throttle(int http_status, const char *type)
{
	const struct type_entry *t = type_lookup(type);
	if (t)
		return (t->flags & F_THROTTLE) != 0;
	return http_status == 429;
}

int awserr_errno_for(int http_status, const char *type, int curl_code)
{
	int retry;
	if (curl_code)
		return transport_errno(curl_code, &retry);
	if (awserr_is_throttle(http_status, type))
		return EAGAIN;
	if (http_status >= 500)
		return http_status == 504 ? ETIMEDOUT : EIO; /* never ENOENT */
	const struct type_entry *t = type_lookup(type);
	if (t)
		return t->err;
	if (http_status >= 200 && http_status < 300)
		return (type && *type) ? EIO : 0;
	switch (http_status) {
	case 400: return EINVAL;
	case 401: return EACCES;
	case 403: return EACCES;
	case 404: return ENOENT;
	case 405: return ENOTSUP;
	case 408: return ETIMEDOUT;
	case 409: return EBUSY;
	case 410: return ENOENT;
	case 411: return EINVAL;
	case 412: return ESTALE;
	case 413: return EFBIG;
	case 414: return ENAMETOOLONG;
	case 416: return EINVAL;
	default:
		break;
	}
	if (http_status >= 400 && http_status < 500)
		return EINVAL;
	return EIO; /* 0 (no response), 1xx, 3xx (redirects are not followed) */
}

int awserr_retryable(int http_status, const char *type, int curl_code)
{
	int retry;
	if (curl_code) {
		transport_errno(curl_code, &retry);
		return retry;
	}
	const struct type_entry *t = type_lookup(type);
	if (t && (t->flags & (F_THROTTLE | F_TRANSIENT)))
		return 1;
	if (http_status == 429 || http_status == 408)
		return 1;
	if (http_status >= 500 && http_status != 501 && http_status != 505)
		return 1;
	return 0;
}

int awserr_is_retryable(const struct awserr *e)
{
	return awserr_retryable(e->http_status, e->type, e->curl_code);
}

void awserr_clear(struct awserr *e)
{
	memset(e, 0, sizeof(*e));
}

/* Copies n bytes of src into dst (size dn), truncated on a UTF-8 boundary, control bytes -> '?',
 * leading/trailing ASCII whitespace trimmed. */
static void copy_clean(char *dst, size_t dn, const char *src, size_t n)
{
	if (!dn)
		return;
	while (n && isspace((unsigned char)*src)) {
		src++;
		n--;
	}
	while (n && isspace((unsigned char)src[n - 1]))
		n--;
	if (n > dn - 1) {
		n = dn - 1;
		/* do not cut a UTF-8 sequence: drop trailing continuation bytes and their lead */
		size_t k = n;
		while (k > 0 && ((unsigned char)src[k] & 0xC0) == 0x80)
			k--;
		if (k < n && k > 0 && ((unsigned char)src[k] & 0xC0) == 0x80)
			k = n;
		n = k;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	dst[n] = '\0';
}

/* Normalises an error type: cut at the first ':', keep what follows the last '#'. */
static void set_type(char *dst, size_t dn, const char *src, size_t n)
{
	const char *colon = memchr(src, ':', n);
	if (colon)
		n = (size_t)(colon - src);
	for (size_t i = n; i > 0; i--) {
		if (src[i - 1] == '#') {
			src += i;
			n -= i;
			break;
		}
	}
	copy_clean(dst, dn, src, n);
}

int awserr_parse_json_body(const void *body, size_t len, char *type, size_t type_n,
			   char *msg, size_t msg_n)
{
	if (!body || !len)
		return 0;
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return 0;
	if (!json_is_object(root)) {
		json_decref(root);
		return 0;
	}
	static const char *const type_keys[] = { "__type", "code", "Code" };
	for (size_t i = 0; i < 3 && type; i++) {
		const json_t *v = json_object_get(root, type_keys[i]);
		if (json_is_string(v) && json_string_length(v) > 0) {
			set_type(type, type_n, json_string_value(v), json_string_length(v));
			break;
		}
	}
	static const char *const msg_keys[] = { "Message", "message", "errorMessage" };
	for (size_t i = 0; i < 3 && msg; i++) {
		const json_t *v = json_object_get(root, msg_keys[i]);
		if (json_is_string(v)) {
			copy_clean(msg, msg_n, json_string_value(v), json_string_length(v));
			break;
		}
	}
	json_decref(root);
	return 1;
}

/* The text of the first <tag> element in p[0..n) (xmlscan's leaf text: up to the next '<', or
 * the end of a truncated body). Returns 1 and the raw span, else 0. */
static int xml_find(const char *p, size_t n, const char *tag, const char **val, size_t *vlen)
{
	struct xmlscan_span s;
	if (xmlscan_text(p, n, tag, &s) != 1)
		return 0;
	*val = s.text;
	*vlen = s.len;
	return 1;
}

/* Decodes raw element text into dst (size dn): the five XML entities and character references
 * of printable ASCII (others stay literal), then cleaned as every string of the struct. */
static void xml_copy(char *dst, size_t dn, const char *src, size_t n)
{
	char tmp[AWSERR_MSG_MAX];
	size_t o = xmlscan_decode(src, n, XMLSCAN_REFS_ASCII, tmp, sizeof(tmp));
	copy_clean(dst, dn, tmp, o);
}

int awserr_parse_xml_body(const void *body, size_t len, char *type, size_t type_n,
			  char *msg, size_t msg_n, char *reqid, size_t reqid_n)
{
	if (!body || !len)
		return 0;
	const char *p = body;
	size_t n = len;
	/* skip a UTF-8 BOM and leading whitespace; an XML body starts with '<' */
	if (n >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
	    (unsigned char)p[2] == 0xBF) {
		p += 3;
		n -= 3;
	}
	while (n && isspace((unsigned char)*p)) {
		p++;
		n--;
	}
	if (!n || *p != '<')
		return 0;
	const char *v;
	size_t vl;
	int found = 0;
	if (xml_find(p, n, "Code", &v, &vl)) {
		if (type) {
			char tmp[AWSERR_TYPE_MAX];
			xml_copy(tmp, sizeof(tmp), v, vl);
			set_type(type, type_n, tmp, strlen(tmp));
		}
		found = 1;
	}
	if (xml_find(p, n, "Message", &v, &vl)) {
		if (msg)
			xml_copy(msg, msg_n, v, vl);
		found = 1;
	}
	if (xml_find(p, n, "RequestId", &v, &vl)) {
		if (reqid)
			xml_copy(reqid, reqid_n, v, vl);
	}
	if (!found) {
		/* recognise an <Error> document even without a code (e.g. empty S3 error) */
		found = xml_find(p, n, "Error", &v, &vl);
	}
	return found;
}

static void fill_class(struct awserr *e)
{
	e->err = awserr_errno_for(e->http_status, e->type, e->curl_code);
	e->retryable = awserr_retryable(e->http_status, e->type, e->curl_code);
	e->throttled = e->curl_code ? 0 : awserr_is_throttle(e->http_status, e->type);
	if (!e->err && (e->http_status < 200 || e->http_status >= 300 || e->curl_code))
		e->err = EIO; /* a failure must always carry an errno */
}

int awserr_parse(struct awserr *e, int http_status, const char *errtype_hdr,
		 const char *reqid_hdr, const void *body, size_t len)
{
	awserr_clear(e);
	e->http_status = http_status;
	if (reqid_hdr)
		copy_clean(e->request_id, sizeof(e->request_id), reqid_hdr, strlen(reqid_hdr));
	char btype[AWSERR_TYPE_MAX] = "";
	if (!awserr_parse_json_body(body, len, btype, sizeof(btype), e->message,
				    sizeof(e->message)))
		awserr_parse_xml_body(body, len, btype, sizeof(btype), e->message,
				      sizeof(e->message), e->request_id[0] ? NULL : e->request_id,
				      sizeof(e->request_id));
	if (errtype_hdr && *errtype_hdr)
		set_type(e->type, sizeof(e->type), errtype_hdr, strlen(errtype_hdr));
	if (!e->type[0] && btype[0])
		snprintf(e->type, sizeof(e->type), "%s", btype);
	fill_class(e);
	return -e->err;
}

int awserr_set_transport(struct awserr *e, int curl_code, int http_status, const char *detail)
{
	awserr_clear(e);
	e->http_status = http_status;
	e->curl_code = curl_code;
	const char *d = detail && *detail ? detail : curl_easy_strerror((CURLcode)curl_code);
	copy_clean(e->message, sizeof(e->message), d, strlen(d));
	fill_class(e);
	if (!e->err)
		e->err = EIO;
	return -e->err;
}

int awserr_set_errno(struct awserr *e, int err, const char *detail)
{
	int status = e->http_status;
	awserr_clear(e);
	e->http_status = status;
	e->err = err > 0 ? err : EIO;
	if (detail)
		copy_clean(e->message, sizeof(e->message), detail, strlen(detail));
	return -e->err;
}

char *awserr_format(const struct awserr *e, char *out, size_t n)
{
	if (!n)
		return out;
	if (!e->err) {
		snprintf(out, n, "no error");
		return out;
	}
	const char *ename = strerrorname_np(e->err);
	char num[16];
	if (!ename) {
		snprintf(num, sizeof(num), "errno %d", e->err);
		ename = num;
	}
	if (e->curl_code)
	{
		char st[32] = "";
		if (e->http_status)
			snprintf(st, sizeof(st), " after HTTP %d", e->http_status);
		snprintf(out, n, "transport error %d%s: %s -> %s", e->curl_code, st, e->message,
			 ename);
	}
	else if (e->http_status)
		snprintf(out, n, "HTTP %d %s%s%s%s%s%s -> %s", e->http_status,
			 e->type[0] ? e->type : "(no type)", e->message[0] ? ": " : "", e->message,
			 e->request_id[0] ? " (request id " : "", e->request_id,
			 e->request_id[0] ? ")" : "", ename);
	else
		snprintf(out, n, "%s -> %s", e->message[0] ? e->message : "error", ename);
	return out;
}

/* Credential and permission errors: what happened, and what the user should check. */
static const struct {
	const char *type;
	const char *what;
	const char *hint;
} summaries[] = {
	{ "SignatureDoesNotMatch", "the credentials were rejected", "check the secret access key" },
	{ "InvalidSignatureException", "the credentials were rejected", "check the secret access key" },
	{ "IncompleteSignature", "the request signature was refused", "check the credentials" },
	{ "IncompleteSignatureException", "the request signature was refused", "check the credentials" },
	{ "InvalidAccessKeyId", "the access key ID is not known", "check the access key ID" },
	{ "InvalidClientTokenId", "the access key ID is not known", "check the access key ID" },
	{ "UnrecognizedClientException", "the credentials are not known",
	  "check the access key ID and the session token" },
	{ "ExpiredToken", "the credentials have expired", "renew them" },
	{ "ExpiredTokenException", "the credentials have expired", "renew them" },
	{ "InvalidToken", "the session token is not valid", "renew the credentials" },
	{ "RequestExpired", "the request was refused as too old", "check the system clock" },
	{ "RequestTimeTooSkewed", "the system clock is too far off", "set the system time" },
	{ "MissingAuthenticationToken", "the request carried no credentials", "check the credentials" },
	{ "MissingAuthenticationTokenException", "the request carried no credentials",
	  "check the credentials" },
	{ "AccessDenied", "access was denied", "check the permissions of these credentials" },
	{ "AccessDeniedException", "access was denied", "check the permissions of these credentials" },
	{ "NotAuthorizedException", "access was denied", "check the permissions of these credentials" },
};

#define SUMMARY_DETAIL_MAX 120

/* The first sentence of msg: up to its ". " (the full stop kept) or a '?' (what a control byte
 * such as a line break became), at most SUMMARY_DETAIL_MAX bytes cut on a UTF-8 boundary, with
 * "..." when the sentence itself was cut. */
static void first_sentence(const char *msg, char *out, size_t n)
{
	size_t len = 0;
	while (msg[len] && msg[len] != '?' && !(msg[len] == '.' && msg[len + 1] == ' '))
		len++;
	if (msg[len] == '.')
		len++;
	int cut = 0;
	if (len > SUMMARY_DETAIL_MAX) {
		len = SUMMARY_DETAIL_MAX;
		while (len > 0 && ((unsigned char)msg[len] & 0xC0) == 0x80)
			len--;
		cut = 1;
	}
	snprintf(out, n, "%.*s%s", (int)len, msg, cut ? "..." : "");
}

char *awserr_summary(const struct awserr *e, char *out, size_t n)
{
	if (!n)
		return out;
	if (!e->err) {
		snprintf(out, n, "no error");
		return out;
	}
	const char *ename = strerrorname_np(e->err);
	char num[16], detail[SUMMARY_DETAIL_MAX + 8];
	if (!ename) {
		snprintf(num, sizeof(num), "errno %d", e->err);
		ename = num;
	}
	if (!e->curl_code && e->http_status && e->type[0]) {
		for (size_t i = 0; i < sizeof(summaries) / sizeof(summaries[0]); i++)
			if (strcmp(e->type, summaries[i].type) == 0) {
				snprintf(out, n, "%s (%s, HTTP %d): %s", summaries[i].what, e->type,
					 e->http_status, summaries[i].hint);
				return out;
			}
	}
	first_sentence(e->message, detail, sizeof(detail));
	if (e->curl_code)
		snprintf(out, n, "transport error %d: %s -> %s", e->curl_code,
			 detail[0] ? detail : "no detail", ename);
	else if (e->http_status)
		snprintf(out, n, "HTTP %d %s%s%s -> %s", e->http_status,
			 e->type[0] ? e->type : "(no type)", detail[0] ? ": " : "", detail, ename);
	else
		snprintf(out, n, "%s -> %s", detail[0] ? detail : "error", ename);
	return out;
}
