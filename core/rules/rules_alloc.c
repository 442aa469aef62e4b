/*
 * rules_alloc.c: the Lua state's allocator, which counts every byte against
 * the state's memory cap and serves small blocks from the state's own slabs.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_int.h"

/*
 * Small blocks by size class from the state's slabs: a rule's objects sit
 * together instead of among the daemon's, which keeps a run's working set in
 * fewer cache lines, and freeing one is a push on a list. Freed blocks serve
 * the state again; slabs go back with the state.
 */
static void *
rules_pool_get(struct rules *r, size_t cls)
{
	size_t size = (cls + 1) * RULES_POOL_STEP;
	struct rules_slab *slab = r->slabs;
	void *p = r->pool[cls];

	if (p != NULL) {
		r->pool[cls] = *(void **)p;
		return p;
	}
	if (slab == NULL || slab->used + size > RULES_SLAB_SIZE) {
		if ((slab = malloc(sizeof(*slab) + RULES_SLAB_SIZE)) == NULL)
			return NULL;
		slab->next = r->slabs;
		slab->used = 0;
		r->slabs = slab;
	}
	p = slab->mem + slab->used;
	slab->used += size;
	return p;
}

void *
rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct rules *r = ud;
	size_t old = ptr != NULL ? osize : 0;
	/* Size classes: 1..16 bytes is class 0, 241..256 class 15; larger blocks go to malloc. */
	size_t ocls = old > 0 && old <= RULES_POOL_MAX ? (old - 1) / RULES_POOL_STEP : SIZE_MAX;
	size_t ncls = nsize > 0 && nsize <= RULES_POOL_MAX ? (nsize - 1) / RULES_POOL_STEP : SIZE_MAX;
	void *p;

	if (nsize == 0) {
		if (ptr != NULL && ocls != SIZE_MAX) {
			*(void **)ptr = r->pool[ocls];
			r->pool[ocls] = ptr;
		} else {
			free(ptr);
		}
		r->mem -= old;
		return NULL;
	}
	if (nsize > old && r->mem - old + nsize > r->limits.memory) {
		r->oom = 1;
		return NULL;
	}
	if (ptr != NULL && ocls == ncls && ocls != SIZE_MAX) {
		p = ptr;
	} else if (ncls == SIZE_MAX && (ptr == NULL || ocls == SIZE_MAX)) {
		p = realloc(ptr, nsize);
	} else {
		p = ncls != SIZE_MAX ? rules_pool_get(r, ncls) : malloc(nsize);
		if (p != NULL && ptr != NULL) {
			memcpy(p, ptr, old < nsize ? old : nsize);
			rules_alloc(ud, ptr, osize, 0);
			r->mem += old; /* the free above took it off; the line below counts the move */
		}
	}
	if (p != NULL)
		r->mem = r->mem - old + nsize;
	return p;
}

void
rules_alloc_free_slabs(struct rules *r)
{
	while (r->slabs != NULL) {
		struct rules_slab *next = r->slabs->next;

		free(r->slabs);
		r->slabs = next;
	}
}
