#!/bin/sh
# Runs the pytest integration (and browser) suites against the loketd of this build tree, once
# per storage driver in LOKET_TEST_DRIVERS, each run writing tests/pytest-junit-DRIVER.xml
# (tests/summary.py counts them all).
#
# LOKET_TEST_DRIVERS unset: sqlite, plus pgsql when this build has the store_pgsql plugin and
# PostgreSQL is installed (initdb on PATH or in /usr/lib/postgresql/*/bin). A pgsql run that
# is due (configure found libpq and plugins/store_pgsql/store_pgsql.c exists) but cannot run
# fails under CI=true and is one visible skip otherwise.
# LOKET_TEST_DRIVERS set but empty: no integration run at all (make distcheck in .ci/run).
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
mkdir -p tests && rm -f tests/pytest-junit*.xml

pgsql_so=plugins/.libs/store_pgsql.so
initdb=$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
# Why a pgsql run cannot happen here, or nothing when it can.
pgsql_missing() {
	if [ ! -f "$pgsql_so" ]; then
		echo "the store_pgsql plugin is not built ($LOKET_BUILDDIR/$pgsql_so)"
	elif [ -z "$initdb" ]; then
		echo "PostgreSQL is not installed (no initdb): install the Debian package postgresql"
	elif ! command -v psql >/dev/null 2>&1; then
		echo "psql is not installed: install the Debian package postgresql-client"
	fi
}
# A skipped run as JUnit, so that the summary counts it.
junit_skip() {
	python3 - "$1" "$2" <<'PY'
import sys
from xml.sax.saxutils import quoteattr
driver, why = sys.argv[1], sys.argv[2]
with open("tests/pytest-junit-%s.xml" % driver, "w") as f:
    f.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="integration '
            '(%s)" tests="1" failures="0" errors="0" skipped="1"><testcase classname="integration"'
            ' name="%s driver run"><skipped message=%s /></testcase></testsuite></testsuites>\n'
            % (driver, driver, quoteattr(why)))
PY
}

status=0
if [ "${LOKET_TEST_DRIVERS+set}" = set ]; then
	drivers=$LOKET_TEST_DRIVERS
	if [ -z "$drivers" ]; then
		echo "integration suite not run: LOKET_TEST_DRIVERS is empty"
		exit 77
	fi
else
	drivers=sqlite
	why=$(pgsql_missing)
	due=no
	if grep -q '^#define HAVE_PGSQL 1' config.h 2>/dev/null &&
		[ -f "$LOKET_SRCDIR/plugins/store_pgsql/store_pgsql.c" ]; then
		due=yes
	fi
	if [ -z "$why" ]; then
		drivers="sqlite pgsql"
	elif [ $due = yes ] && [ "$CI" = true ]; then
		echo "*** FAILED: the pgsql run is due (libpq configured, store_pgsql.c present) and CI=true, but $why ***" >&2
		status=1
	elif [ $due = yes ]; then
		echo "*** SKIPPED: the integration suite on the pgsql driver: $why ***" >&2
		junit_skip pgsql "$why"
	else
		echo "integration suite on the pgsql driver: off ($why)"
	fi
fi

for driver in $drivers; do
	case $driver in
	sqlite | pgsql) ;;
	*) echo "LOKET_TEST_DRIVERS: unknown driver '$driver'; expected sqlite or pgsql" >&2; exit 99 ;;
	esac
	echo "=== integration suite on the $driver driver"
	# The pgsql run's cluster needs initdb; Debian keeps it off PATH.
	LOKET_TEST_DRIVER=$driver PATH="$PATH${initdb:+:$(dirname "$initdb")}" \
		"$PYTEST" -p no:cacheprovider -ra -v \
		--junitxml="$LOKET_BUILDDIR/tests/pytest-junit-$driver.xml" \
		--rootdir "$LOKET_SRCDIR/tests" "$LOKET_SRCDIR/tests/integration" ${PYTEST_ARGS:-} ||
		status=1
done
exit $status
