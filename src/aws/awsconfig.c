/*
 * awsconfig: the profile view of the AWS shared files, region and endpoints (see
 * include/kvsfs/awsconfig.h); the files themselves are read by awsconfig_ini.c.
 *
 * Design: awsconfig_files_load picks the profile and the two paths as the CLI does
 * (environment, "~" and $VAR expansion), loads both files with awsconfig_load and checks that a
 * named profile exists; awsconfig_files_get merges them (credentials file first).
 * awsconfig_resolve then picks the region (option, AWS_REGION, AWS_DEFAULT_REGION, profile) and
 * derives or checks the KVS and S3 endpoints.
 * Invariants: no global state (the environment is read through awsconfig_getenv from the
 * caller's array or the process's); every result string is malloc'd and owned by the struct it
 * is stored in; error sentences name settings and files, never secret values.
 */
#include "kvsfs/awsconfig.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kvsfs/buf.h"

extern char **environ;

/* ---- environment and paths ---- */

const char *awsconfig_getenv(char *const *env, const char *name)
{
	if (!env)
		env = environ;
	if (!env || !name)
		return NULL;
	size_t n = strlen(name);
	for (; *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

static int is_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

char *awsconfig_expand_path(const char *path, char *const *env)
{
	struct buf b = BUF_INIT;
	/* os.path.expandvars: $name ([A-Za-z0-9_]+) and ${name}; unknown names stay. */
	for (const char *p = path; *p;) {
		if (*p == '$') {
			const char *ns, *ne, *after;
			if (p[1] == '{') {
				ns = p + 2;
				ne = strchr(ns, '}');
				after = ne ? ne + 1 : NULL;
			} else {
				ns = p + 1;
				ne = ns;
				while (is_word(*ne))
					ne++;
				after = ne;
			}
			if (ne && ne > ns) {
				char *name = strndup(ns, (size_t)(ne - ns));
				if (!name)
					goto oom;
				const char *v = awsconfig_getenv(env, name);
				free(name);
				if (v) {
					if (buf_appendz(&b, v))
						goto oom;
					p = after;
					continue;
				}
			}
		}
		if (buf_putc(&b, *p))
			goto oom;
		p++;
	}
	if (!b.data && buf_reserve(&b, 1))
		goto oom;
	/* os.path.expanduser: "~" or "~/..." from HOME (else passwd), "~user/...". */
	if (b.data[0] == '~') {
		const char *rest = strchr(b.data, '/');
		size_t ul = rest ? (size_t)(rest - b.data - 1) : b.len - 1;
		const char *home = NULL;
		char pwbuf[4096];
		struct passwd pw, *res = NULL;
		if (ul == 0) {
			home = awsconfig_getenv(env, "HOME");
			if (!home && getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
				home = pw.pw_dir;
		} else {
			char *user = strndup(b.data + 1, ul);
			if (!user)
				goto oom;
			if (getpwnam_r(user, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
				home = pw.pw_dir;
			free(user);
		}
		if (home) {
			struct buf o = BUF_INIT;
			size_t hl = strlen(home);
			while (hl > 1 && home[hl - 1] == '/')
				hl--;
			if (buf_append(&o, home, hl) || (rest && buf_appendz(&o, rest))) {
				buf_free(&o);
				goto oom;
			}
			if (!o.data && buf_appendz(&o, "/")) {
				buf_free(&o);
				goto oom;
			}
			buf_free(&b);
			return buf_steal(&o);
		}
	}
	return buf_steal(&b);
oom:
	buf_free(&b);
	return NULL;
}

/* ---- files of one profile ---- */

void awsconfig_files_free(struct awsconfig_files *f)
{
	awsconfig_free(&f->config);
	awsconfig_free(&f->credentials);
	free(f->config_path);
	free(f->credentials_path);
	free(f->profile);
	memset(f, 0, sizeof(*f));
	f->config.kind = AWSCONFIG_CONFIG;
	f->credentials.kind = AWSCONFIG_CREDENTIALS;
}

int awsconfig_files_load(struct awsconfig_files *f, const char *opt_profile,
			 char *const *env, struct log_ctx *lg, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	awsconfig_init(&f->config, AWSCONFIG_CONFIG);
	awsconfig_init(&f->credentials, AWSCONFIG_CREDENTIALS);
	if (errlen)
		err[0] = '\0';
	const char *prof = NULL;
	if (opt_profile) {
		prof = opt_profile;
		f->profile_explicit = 1;
	} else if ((prof = awsconfig_getenv(env, "AWS_PROFILE")) && *prof) {
		f->profile_from_env = 1;
	} else {
		prof = "default";
	}
	if (!*prof) {
		if (errlen)
			snprintf(err, errlen, "the profile name is empty");
		LOG_DEBUG(lg, "awsconfig", "the profile name is empty");
		return -EINVAL;
	}
	const char *cp = awsconfig_getenv(env, "AWS_CONFIG_FILE");
	const char *kp = awsconfig_getenv(env, "AWS_SHARED_CREDENTIALS_FILE");
	f->profile = strdup(prof);
	f->config_path = awsconfig_expand_path(cp && *cp ? cp : "~/.aws/config", env);
	f->credentials_path = awsconfig_expand_path(kp && *kp ? kp : "~/.aws/credentials", env);
	if (!f->profile || !f->config_path || !f->credentials_path) {
		awsconfig_files_free(f);
		if (errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = awsconfig_load(&f->config, AWSCONFIG_CONFIG, f->config_path, lg, err, errlen);
	if (rc && rc != -ENOENT)
		goto fail;
	rc = awsconfig_load(&f->credentials, AWSCONFIG_CREDENTIALS, f->credentials_path, lg, err,
			    errlen);
	if (rc && rc != -ENOENT)
		goto fail;
	if ((f->profile_explicit || f->profile_from_env) &&
	    !awsconfig_has_profile(&f->config, f->profile) &&
	    !awsconfig_has_profile(&f->credentials, f->profile)) {
		if (errlen)
			snprintf(err, errlen, "the profile \"%s\" (from %s) is not defined in %s or %s",
				 f->profile, f->profile_explicit ? "the profile option" : "AWS_PROFILE",
				 f->config_path, f->credentials_path);
		LOG_DEBUG(lg, "awsconfig", "profile \"%s\" is not defined in %s or %s", f->profile,
			  f->config_path, f->credentials_path);
		rc = -ENOENT;
		goto fail;
	}
	return 0;
fail:
	awsconfig_files_free(f);
	return rc;
}

const char *awsconfig_files_get(const struct awsconfig_files *f, const char *key)
{
	if (!f || !f->profile)
		return NULL;
	const char *v = awsconfig_get(&f->credentials, f->profile, key);
	return v ? v : awsconfig_get(&f->config, f->profile, key);
}

/* ---- region and endpoints ---- */

int awsconfig_region_valid(const char *r)
{
	if (!r || !*r)
		return 0;
	size_t n = 0;
	for (const char *p = r; *p; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
	return n <= AWSCONFIG_REGION_MAX;
}

static char *derive(const char *prefix, const char *region)
{
	if (!awsconfig_region_valid(region))
		return NULL;
	struct buf b = BUF_INIT;
	int cn = strncmp(region, "cn-", 3) == 0;
	if (buf_printf(&b, "https://%s.%s.amazonaws.com%s", prefix, region, cn ? ".cn" : "")) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

char *awsconfig_kvs_endpoint(const char *region)
{
	return derive("kinesisvideo", region);
}

char *awsconfig_s3_endpoint(const char *region)
{
	return derive("s3", region);
}

char *awsconfig_endpoint_normalize(const char *url, char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	size_t skip;
	if (!url) {
		if (errlen)
			snprintf(err, errlen, "is empty");
		return NULL;
	}
	if (strncasecmp(url, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(url, "http://", 7) == 0)
		skip = 7;
	else {
		if (errlen)
			snprintf(err, errlen, "must start with http:// or https://");
		return NULL;
	}
	for (const char *p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c == 0x7f) {
			if (errlen)
				snprintf(err, errlen, "contains whitespace or control characters");
			return NULL;
		}
		if (c == '?' || c == '#') {
			if (errlen)
				snprintf(err, errlen, "must not have a query or fragment");
			return NULL;
		}
	}
	const char *host = url + skip;
	size_t al = strcspn(host, "/");
	if (memchr(host, '@', al)) {
		if (errlen)
			snprintf(err, errlen, "must not contain user information");
		return NULL;
	}
	/* Host part: non-empty, port (if any) all digits. */
	size_t hl = al;
	if (host[0] == '[') {
		const char *rb = memchr(host, ']', al);
		if (!rb || rb == host + 1) {
			if (errlen)
				snprintf(err, errlen, "has a malformed IPv6 host");
			return NULL;
		}
		hl = (size_t)(rb - host) + 1;
		if (hl < al && host[hl] != ':') {
			if (errlen)
				snprintf(err, errlen, "has a malformed host");
			return NULL;
		}
	} else {
		const char *colon = memchr(host, ':', al);
		if (colon)
			hl = (size_t)(colon - host);
	}
	if (hl == 0) {
		if (errlen)
			snprintf(err, errlen, "has no host");
		return NULL;
	}
	if (hl < al) {
		size_t plen = al - hl - 1;
		if (plen == 0 || plen > 5) {
			if (errlen)
				snprintf(err, errlen, "has a malformed port");
			return NULL;
		}
		long port = 0;
		for (size_t i = hl + 1; i < al; i++) {
			if (host[i] < '0' || host[i] > '9') {
				if (errlen)
					snprintf(err, errlen, "has a malformed port");
				return NULL;
			}
			port = port * 10 + (host[i] - '0');
		}
		if (port < 1 || port > 65535) {
			if (errlen)
				snprintf(err, errlen, "has a port out of range");
			return NULL;
		}
	}
	size_t n = strlen(url);
	while (n > skip + al && url[n - 1] == '/')
		n--;
	char *out = strndup(url, n);
	if (!out && errlen)
		snprintf(err, errlen, "out of memory");
	return out;
}

void awsconfig_settings_free(struct awsconfig_settings *s)
{
	free(s->region);
	free(s->kvs_endpoint);
	free(s->s3_endpoint);
	memset(s, 0, sizeof(*s));
}

int awsconfig_resolve(struct awsconfig_settings *out, const struct awsconfig_files *files,
		      const char *opt_region, const char *opt_endpoint,
		      const char *opt_s3_endpoint, char *const *env, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	const char *r = NULL, *src = NULL;
	const char *v;
	if (opt_region && *opt_region) {
		r = opt_region;
		src = "option";
	} else if ((v = awsconfig_getenv(env, "AWS_REGION")) && *v) {
		r = v;
		src = "AWS_REGION";
	} else if ((v = awsconfig_getenv(env, "AWS_DEFAULT_REGION")) && *v) {
		r = v;
		src = "AWS_DEFAULT_REGION";
	} else if ((v = awsconfig_files_get(files, "region")) && *v) {
		r = v;
		src = "profile";
	}
	if (!r) {
		if (errlen)
			snprintf(err, errlen, "no AWS region is set: use the region= option, "
				 "AWS_REGION or a region in the profile");
		return -EINVAL;
	}
	if (!awsconfig_region_valid(r)) {
		if (errlen) {
			if (strcmp(src, "profile") == 0)
				snprintf(err, errlen, "the region of profile \"%s\" is not a valid "
					 "region name", files->profile);
			else
				snprintf(err, errlen, "the region from %s is not a valid region name", src);
		}
		return -EINVAL;
	}
	out->region = strdup(r);
	out->region_source = src;
	char why[128];
	if (opt_endpoint && *opt_endpoint) {
		out->kvs_endpoint = awsconfig_endpoint_normalize(opt_endpoint, why, sizeof(why));
		if (!out->kvs_endpoint) {
			if (errlen)
				snprintf(err, errlen, "the endpoint option %s", why);
			awsconfig_settings_free(out);
			return -EINVAL;
		}
		out->kvs_endpoint_explicit = 1;
	} else {
		out->kvs_endpoint = awsconfig_kvs_endpoint(r);
	}
	if (opt_s3_endpoint && *opt_s3_endpoint) {
		out->s3_endpoint = awsconfig_endpoint_normalize(opt_s3_endpoint, why, sizeof(why));
		if (!out->s3_endpoint) {
			if (errlen)
				snprintf(err, errlen, "the s3_endpoint option %s", why);
			awsconfig_settings_free(out);
			return -EINVAL;
		}
		out->s3_endpoint_explicit = 1;
	} else {
		out->s3_endpoint = awsconfig_s3_endpoint(r);
	}
	if (!out->region || !out->kvs_endpoint || !out->s3_endpoint) {
		awsconfig_settings_free(out);
		if (errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}
