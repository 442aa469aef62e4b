/*
 * rules_load.c: reading the rules folder into the state: each *.lua file in
 * name order, as text only, with its own globals, under the guards.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rules_int.h"
#include "util.h"

int
rules_load_file(struct rules *r, const char *name, int nresults, const char **error_r)
{
	lua_State *L = r->L;
	char path[4096], chunkname[300];
	FILE *fp;
	char *buf = NULL;
	size_t len;
	struct stat st;
	const char *msg;
	enum rules_result res;
	int top = lua_gettop(L);

	*error_r = NULL;
	if (util_path_join(path, sizeof(path), r->dir, name) < 0 || (fp = fopen(path, "r")) == NULL) {
		*error_r = util_error("%s: cannot read: %s", name, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > RULES_FILE_MAX ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(fp);
		*error_r = util_error("%s: not a regular file of at most 1 MiB", name);
		return -1;
	}
	len = fread(buf, 1, (size_t)st.st_size, fp);
	fclose(fp);
	snprintf(chunkname, sizeof(chunkname), "@%s", name);
	/* Text only: a precompiled chunk could break the VM's own checks. */
	if (luaL_loadbufferx(L, buf, len, chunkname, "t") != LUA_OK) {
		const char *why = lua_tostring(L, -1);
		int named = strncmp(why, name, strlen(name)) == 0;

		free(buf);
		/* Syntax errors name file:line already; others (a binary chunk) get the file. */
		*error_r = util_error("%s%s%s", named ? "" : name, named ? "" : ": ", why);
		lua_settop(L, top);
		return -1;
	}
	free(buf);
	rules_sandbox_push_env(L);
	lua_setupvalue(L, -2, 1);
	if (nresults == 0) {
		res = rules_guard_pcall(r, 0, r->limits.instructions * 10, &msg);
		if (res != RULES_OK) {
			int named = msg != NULL && strncmp(msg, name, strlen(name)) == 0;

			*error_r = util_error("%s%s%s (%s)", named ? "" : name, named ? "" : ": ",
				msg != NULL ? msg : "failed", rules_result_name(res));
			lua_settop(L, top);
			return -1;
		}
		lua_settop(L, top);
		return 0;
	}
	/* A module: call it directly; the caller's guards are already armed. */
	if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
		*error_r = util_error("%s", lua_tostring(L, -1));
		lua_settop(L, top);
		return -1;
	}
	return 0;
}

static int
rules_name_filter(const struct dirent *e)
{
	size_t len = strlen(e->d_name);

	return e->d_name[0] != '.' && len > 4 && strcmp(e->d_name + len - 4, ".lua") == 0;
}

/* Loads every *.lua file of r->dir in name order, each as a rule file. */
int
rules_load_folder(struct rules *r, const char **error_r)
{
	struct dirent **names = NULL;
	int n, ret = 0;

	if ((n = scandir(r->dir, &names, rules_name_filter, alphasort)) < 0) {
		*error_r = util_error("%s: cannot read the rules folder: %s", r->dir, strerror(errno));
		return -1;
	}
	r->loading = 1;
	if (n > 0 && (r->files = calloc((size_t)n, sizeof(*r->files))) == NULL) {
		*error_r = util_error("%s: out of memory loading the rules", r->dir);
		ret = -1;
	}
	for (int i = 0; i < n && ret == 0; i++) {
		/* Listed for the admin (rules_describe), even a file without handlers. */
		if ((r->files[r->nfiles] = strdup(names[i]->d_name)) != NULL)
			r->nfiles++;
		ret = rules_load_file(r, names[i]->d_name, 0, error_r);
	}
	r->loading = 0;
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}
