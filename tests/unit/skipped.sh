#!/bin/sh
# Stands in for the C unit tests when cmocka is missing, so the skip is loud.
echo "*** SKIPPED: C unit tests need cmocka; install libcmocka-dev ***" >&2
exit 77
