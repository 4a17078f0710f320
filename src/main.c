/*
 * kvsfs entry point: parses options, prints help/version, sets up the process-wide libraries
 * (curl_global_init is the one process-wide call) and hands over to the mount.
 */
#include "kvsfs_config.h"
#include "kvsfs/options.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct kvsfs_options opts;
	char err[512];
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	if (options_parse(argc, argv, &opts, err, sizeof(err)) != 0) {
		fprintf(stderr, "kvsfs: %s\n", err);
		return 2;
	}
	if (opts.show_help) {
		options_print_help(prog);
		options_free(&opts);
		return 0;
	}
	if (opts.show_version) {
		printf("kvsfs %s (libcurl %s)\n", KVSFS_VERSION, curl_version_info(CURLVERSION_NOW)->version);
		options_free(&opts);
		return 0;
	}
	if (!opts.mountpoint) {
		fprintf(stderr, "kvsfs: no mount point given (see kvsfs --help)\n");
		options_free(&opts);
		return 2;
	}
	fprintf(stderr, "kvsfs: mounting is not available in this build yet\n");
	options_free(&opts);
	return 1;
}
