#!/bin/sh
# Runs the pytest integration (and browser) suites against the loketd of this build tree.
: "${LOKET_SRCDIR:?run me through make check}"
if [ -z "$PYTEST" ]; then
	if [ "$CI" = true ]; then
		echo "pytest is missing and CI=true: nothing may be skipped" >&2
		exit 99
	fi
	echo "*** SKIPPED: integration tests need pytest; install python3-pytest ***" >&2
	exit 77
fi
cd "$LOKET_BUILDDIR" || exit 99
exec "$PYTEST" -p no:cacheprovider -ra -v --junitxml="$LOKET_BUILDDIR/tests/pytest-junit.xml" \
	--rootdir "$LOKET_SRCDIR/tests" "$LOKET_SRCDIR/tests/integration" ${PYTEST_ARGS:-}
