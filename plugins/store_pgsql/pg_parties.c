/* pg_parties.c: SCAFFOLD (being written): parties: matching at intake, staff changes, merges. */
#include "pg.h"
