/*
 * mlsec-launch - the container's ENTRYPOINT: `mlsec-launch SERVICE [ARGS]`
 * execs the named mlsec program from MLSEC_LAUNCH_DIR with ARGS, so one
 * image serves every Deployment of the Helm chart without a shell.
 *
 * SERVICE is a stage ("inspect" -> mlsec-inspectd), "orchestrator"
 * (-> mlsec-orchestratord), or a program name starting with "mlsec"
 * (mlsec, mlsec-submit, mlsec-inspectd...). Only [a-z0-9-] names are
 * accepted and the directory is fixed at build time: no PATH search, no
 * environment-controlled location. With no argument or --help it lists the
 * programs it can start. Exit status: that of the program, or 127 when it
 * cannot be started (one line on stderr), 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef MLSEC_LAUNCH_DIR
#define MLSEC_LAUNCH_DIR "/usr/local/bin"
#endif

#define NAME_MAX_LEN 64

static const char *const stages[] = {"adversarial", "inspect",    "poison",
                                     "export",      "checkpoint", "triton"};

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

/* Maps a service name to a program name in out; 0 on success. */
static int program_name(const char *service, char *out, size_t size)
{
	if (!valid_name(service))
		return -1;
	if (strcmp(service, "orchestrator") == 0)
		return snprintf(out, size, "mlsec-orchestratord") >= (int)size ? -1 : 0;
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
		if (strcmp(service, stages[i]) == 0)
			return snprintf(out, size, "mlsec-%sd", service) >= (int)size ? -1 : 0;
	if (strncmp(service, "mlsec", 5) == 0 && strcmp(service, "mlsec-launch") != 0)
		return snprintf(out, size, "%s", service) >= (int)size ? -1 : 0;
	return -1;
}

static int usage(FILE *f)
{
	fprintf(f, "usage: mlsec-launch SERVICE [ARGS...]\n"
	           "SERVICE: orchestrator | adversarial | inspect | poison | export |"
	           " checkpoint | triton | mlsec-<program>\n"
	           "programs in " MLSEC_LAUNCH_DIR ":");
	DIR *d = opendir(MLSEC_LAUNCH_DIR);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (strncmp(e->d_name, "mlsec", 5) == 0 &&
			    strcmp(e->d_name, "mlsec-launch") != 0)
				fprintf(f, " %s", e->d_name);
		closedir(d);
	}
	fputc('\n', f);
	return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return usage(stdout);

	char name[NAME_MAX_LEN + 16];
	if (program_name(argv[1], name, sizeof(name)) != 0) {
		fprintf(stderr, "mlsec-launch: unknown service '%.80s' (try --help)\n", argv[1]);
		return 2;
	}
	char path[sizeof(MLSEC_LAUNCH_DIR) + sizeof(name) + 1];
	snprintf(path, sizeof(path), "%s/%s", MLSEC_LAUNCH_DIR, name);

	/* The program sees its own name as argv[0], then the caller's args. */
	argv[1] = name;
	execv(path, argv + 1);
	fprintf(stderr, "mlsec-launch: cannot run %s: %s\n", path, strerror(errno));
	return 127;
}
