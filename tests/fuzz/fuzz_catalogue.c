/* fuzz_catalogue.c: libFuzzer target feeding arbitrary bytes to the catalogue CSV reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Refuses some names so that the "unknown department" path is reached too. */
static int
fuzz_known_cb(const char *kind, const char *name, void *arg)
{
	(void)kind;
	(void)arg;
	return name[0] != 'x';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct catalogue *cat = NULL;
	const char *error = NULL;

	if (catalogue_parse("fuzz", (const char *)data, size, fuzz_known_cb, NULL, &cat, &error)
	    < 0) {
		/* Every failure must explain itself, naming the input. */
		if (cat != NULL || (error != NULL && strncmp(error, "fuzz:", 5) != 0))
			abort();
		return 0;
	}
	if (error != NULL)
		abort();
	for (size_t i = 0; i < cat->nproducts; i++) {
		const struct catalogue_product *p = &cat->products[i];

		if (catalogue_find(cat, p->code) != p)
			abort();
		if ((p->line != 1 && p->line != 2) || (p->line == 2 && p->department == NULL))
			abort();
		/* A product's own keyword, as text, always finds a product. */
		for (size_t k = 0; k < p->nkeywords; k++)
			if (catalogue_match(cat, p->keywords[k]) == NULL)
				abort();
		catalogue_match(cat, p->name);
	}
	catalogue_free(cat);
	return 0;
}
