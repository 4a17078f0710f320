/*
 * creds_container: the container credentials source (ECS/EKS; see include/kvsfs/creds.h, step 3).
 *
 * Design: resolution builds the URL once: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI under the base
 * (opts.container_endpoint, env KVSFS_CONTAINER_ENDPOINT, else http://169.254.170.2), else
 * AWS_CONTAINER_CREDENTIALS_FULL_URI when it is https or uses a host the CLI allows; it also
 * notes where the Authorization token comes from. Every fetch re-reads the token file (agents
 * rotate it), sends one GET with two attempts and parses the JSON reply.
 * Invariants: the URL has no whitespace or control characters; the token is a secret (wiped,
 * never in err); a 401/403 reply is -EACCES.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "creds_internal.h"
#include "kvsfs/fsutil.h"

#define TOKEN_FILE_MAX (16 * 1024)
#define DEFAULT_CONTAINER_BASE "http://169.254.170.2"

/* Is the host of an http:// full URI one the CLI allows? */
static int container_host_allowed(const char *url)
{
	if (strncasecmp(url, "https://", 8) == 0)
		return 1;
	if (strncasecmp(url, "http://", 7) != 0)
		return 0;
	const char *h = url + 7;
	size_t al = strcspn(h, "/?#");
	if (memchr(h, '@', al))
		return 0;
	char host[128];
	size_t hl;
	if (*h == '[') {
		const char *rb = memchr(h, ']', al);
		if (!rb)
			return 0;
		hl = (size_t)(rb - h - 1);
		h++;
	} else {
		const char *c = memchr(h, ':', al);
		hl = c ? (size_t)(c - h) : al;
	}
	if (hl == 0 || hl >= sizeof(host))
		return 0;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (strcasecmp(host, "localhost") == 0 || strcmp(host, "169.254.170.2") == 0 ||
	    strcmp(host, "169.254.170.23") == 0 || strcasecmp(host, "fd00:ec2::23") == 0 ||
	    strcmp(host, "::1") == 0)
		return 1;
	/* Any literal 127.0.0.0/8 address (Python's ip_address(...).is_loopback). */
	unsigned a, b, c, d;
	char extra;
	if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) == 4 && a == 127 && b < 256 &&
	    c < 256 && d < 256)
		return 1;
	return 0;
}

static int read_token_file(const char *path, char **out)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct buf b = BUF_INIT;
	int rc = fsutil_read_fd(fd, TOKEN_FILE_MAX, &b);
	close(fd);
	if (!rc) {
		*out = creds_trimmed_dup(b.data ? b.data : "", b.len);
		if (!*out)
			rc = -ENOMEM;
	}
	creds_buf_wipe_free(&b);
	return rc;
}

int creds_container_fetch(struct creds_provider *p, struct creds_value *out, char *err,
			  size_t errlen)
{
	struct creds_http_get g;
	memset(&g, 0, sizeof(g));
	g.method = "GET";
	g.url = p->container_url;
	g.timeout_ms = p->container_timeout_ms;
	g.attempts = 2;
	char *tok = NULL;
	int rc;
	if (p->container_token_file) {
		rc = read_token_file(p->container_token_file, &tok);
		if (rc) {
			snprintf(err, errlen, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
				 p->container_token_file, strerror(-rc));
			return rc == -ENOENT ? -ENOENT : (rc == -EACCES ? -EACCES : -EIO);
		}
	}
	const char *auth = tok ? tok : p->container_token;
	if (auth && *auth) {
		rc = http_headers_add(&g.hdrs, "Authorization", auth);
		if (rc) {
			creds_wipe_free(tok);
			creds_http_get_free(&g);
			snprintf(err, errlen, "the container authorization token is not a valid header "
				 "value");
			return rc;
		}
	}
	creds_wipe_free(tok);
	char url_log[256], tmp[64];
	http_url_for_log(p->container_url, url_log, sizeof(url_log));
	rc = creds_http_do(p, &g);
	if (rc) {
		snprintf(err, errlen, "the container credentials endpoint %s failed: %s", url_log,
			 creds_http_reason(rc, g.status, tmp, sizeof(tmp)));
		creds_http_get_free(&g);
		return g.status == 401 || g.status == 403 ? -EACCES : rc;
	}
	const char *why = NULL;
	rc = creds_parse_json(g.body.data ? g.body.data : "", g.body.len, "Token", 0, 0,
			      CREDS_SOURCE_CONTAINER, out, &why);
	if (rc)
		snprintf(err, errlen, "the container credentials endpoint %s: %s", url_log, why);
	creds_http_get_free(&g);
	return rc;
}

/* The URL of the endpoint into *url (malloc'd). Returns 0, -EINVAL (err set) or -ENOMEM. */
static int container_url(struct creds_provider *p, const struct creds_options *opts,
			 const char *rel, const char *full, char **url, char *err, size_t errlen)
{
	struct buf u = BUF_INIT;
	if (rel && *rel) {
		const char *base = opts->container_endpoint;
		if (!base || !*base)
			base = creds_getenv(p, "KVSFS_CONTAINER_ENDPOINT");
		if (!base || !*base)
			base = DEFAULT_CONTAINER_BASE;
		size_t bl = strlen(base);
		while (bl && base[bl - 1] == '/')
			bl--;
		if (buf_append(&u, base, bl) || (rel[0] != '/' && buf_putc(&u, '/')) ||
		    buf_appendz(&u, rel)) {
			buf_free(&u);
			return -ENOMEM;
		}
	} else {
		if (!container_host_allowed(full)) {
			snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be an https "
				 "URL or use a loopback, 169.254.170.2 or 169.254.170.23 host");
			return -EINVAL;
		}
		if (buf_appendz(&u, full)) {
			buf_free(&u);
			return -ENOMEM;
		}
	}
	for (const char *c = buf_str(&u); *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c == 0x7f) {
			buf_free(&u);
			snprintf(err, errlen, "the container credentials URI contains whitespace "
				 "or control characters");
			return -EINVAL;
		}
	*url = buf_steal(&u);
	return *url ? 0 : -ENOMEM;
}

int creds_container_resolve(struct creds_provider *p, const struct creds_options *opts,
			    struct creds_value *first, char *err, size_t errlen)
{
	const char *rel = creds_getenv(p, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = creds_getenv(p, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
	if (!(rel && *rel) && !(full && *full))
		return 1;
	int rc = container_url(p, opts, rel, full, &p->container_url, err, errlen);
	if (rc)
		return rc;
	const char *tf = creds_getenv(p, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tk = creds_getenv(p, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
	if (tf && *tf)
		p->container_token_file = strdup(tf);
	else if (tk && *tk)
		p->container_token = strdup(tk);
	if ((tf && *tf && !p->container_token_file) ||
	    (!(tf && *tf) && tk && *tk && !p->container_token))
		return -ENOMEM;
	p->source = CREDS_SOURCE_CONTAINER;
	snprintf(p->describe, sizeof(p->describe), "container endpoint");
	if ((rc = creds_http_setup(p, opts))) {
		snprintf(err, errlen, "cannot set up HTTP for container credentials: %s",
			 strerror(-rc));
		return rc;
	}
	return creds_container_fetch(p, first, err, errlen);
}
