#!/bin/sh
# Runs the browser tests (tests/browser/*.test.mjs, node --test) against the loketd of this
# build tree in Debian's Chromium through playwright-core; screenshots land in
# $LOKET_ARTIFACTS/screenshots (default: the build tree's artifacts/). Without node, the npm
# packages (npm ci) or chromium it skips, loudly; under CI=true that is a failure, and so is
# any single browser test skipped. The TAP output is kept in tests/browser-tap.txt, which
# tests/summary.py counts into the suite's closing line.
: "${LOKET_SRCDIR:?run me through make check}"
: "${LOKET_BUILDDIR:?run me through make check}"
# make distcheck in .ci/run: the tarball's unit tests only (the suites ran on the tree).
if [ "${LOKET_TEST_DRIVERS+set}" = set ] && [ -z "$LOKET_TEST_DRIVERS" ]; then
	echo "browser tests not run: LOKET_TEST_DRIVERS is empty"
	exit 77
fi
# A run that does not get as far as node leaves no counts of an earlier run behind.
rm -f "$LOKET_BUILDDIR/tests/browser-tap.txt"
chromium=${LOKET_CHROMIUM:-/usr/bin/chromium}
missing=
command -v node >/dev/null 2>&1 || missing="$missing node (Debian package nodejs)"
[ -f "$LOKET_SRCDIR/node_modules/playwright-core/package.json" ] &&
	[ -f "$LOKET_SRCDIR/node_modules/axe-core/axe.min.js" ] ||
	missing="$missing node_modules (run npm ci in $LOKET_SRCDIR)"
[ -x "$chromium" ] || missing="$missing $chromium (Debian package chromium)"
if [ -n "$missing" ]; then
	if [ "$CI" = true ]; then
		echo "browser tests cannot run and CI=true: missing$missing" >&2
		exit 99
	fi
	echo "*** SKIPPED: the browser tests need$missing; scripts/install-deps --test installs them ***" >&2
	exit 77
fi
export LOKET_ARTIFACTS="${LOKET_ARTIFACTS:-$LOKET_BUILDDIR/artifacts}"
mkdir -p "$LOKET_ARTIFACTS/screenshots"
# One file at a time: each starts a loketd and a browser, and the machine may have 2 cores.
set --
node --test-concurrency=1 -e 0 >/dev/null 2>&1 && set -- --test-concurrency=1
cd "$LOKET_SRCDIR" || exit 99
out=$LOKET_BUILDDIR/tests/browser-tap.txt
mkdir -p "$LOKET_BUILDDIR/tests"
node --test "$@" --test-reporter=tap tests/browser/*.test.mjs >"$out" 2>&1
status=$?
cat "$out"
# node --test's closing counts (tests/summary.py reads the same file for the suite's total).
count() { sed -n "s/^# $1 \\([0-9]*\\)\$/\\1/p" "$out" | tail -n 1; }
tests=$(count tests) passed=$(count pass) failed=$(count fail) skipped=$(count skipped)
cancelled=$(count cancelled) todo=$(count todo)
if [ -z "$tests" ]; then
	echo "browser tests: node --test printed no totals (it did not finish)" >&2
	[ $status -ne 0 ] || status=99
fi
echo "browser tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped, ${cancelled:-0} cancelled, ${todo:-0} todo"
if [ "${cancelled:-0}" -gt 0 ] && [ $status -eq 0 ]; then
	status=1 # a test cut off (a hook failed, a timeout) did not pass
fi
if [ "${skipped:-0}" -gt 0 ] || [ "${todo:-0}" -gt 0 ]; then
	echo "*** browser tests: ${skipped:-0} SKIPPED, ${todo:-0} TODO (see '# SKIP' / '# TODO' above) ***" >&2
	if [ "$CI" = true ]; then
		echo "browser tests: CI=true and a test did not run: failing" >&2
		[ $status -ne 0 ] || status=1
	fi
fi
shots=$(ls "$LOKET_ARTIFACTS/screenshots" 2>/dev/null | grep -c '\.png$')
echo "browser tests: $shots screenshots in $LOKET_ARTIFACTS/screenshots"
exit $status
