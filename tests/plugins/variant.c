/* variant.c: deliberately broken plugins the loader must refuse, one per -D flag. */
#include <loket/plugin.h>

static int
variant_load(struct loket_plugin *self, const struct loket_api *api, const char **error_r)
{
#ifdef VARIANT_LOAD_FAILS
	*error_r = "the variant was told to fail";
	return -1;
#else
	return 0;
#endif
}

#if defined(VARIANT_BAD_MAJOR)
__attribute__((visibility("default"))) const struct loket_plugin_info loket_plugin = {
	.abi_major = LOKET_ABI_MAJOR + 1, .abi_minor = 0, .name = "bad_major", .load = variant_load
};
#elif defined(VARIANT_NEWER_MINOR)
__attribute__((visibility("default"))) const struct loket_plugin_info loket_plugin = {
	.abi_major = LOKET_ABI_MAJOR, .abi_minor = LOKET_ABI_MINOR + 1, .name = "newer_minor",
	.load = variant_load
};
#elif defined(VARIANT_NO_SYMBOL)
__attribute__((visibility("default"))) const struct loket_plugin_info not_the_descriptor = {
	.abi_major = LOKET_ABI_MAJOR, .abi_minor = LOKET_ABI_MINOR, .name = "no_symbol",
	.load = variant_load
};
#elif defined(VARIANT_DUP_NAME)
LOKET_PLUGIN_DEFINE(.name = "hello", .version = "0", .load = variant_load);
#elif defined(VARIANT_LOAD_FAILS)
LOKET_PLUGIN_DEFINE(.name = "load_fails", .version = "0", .load = variant_load);
#endif
