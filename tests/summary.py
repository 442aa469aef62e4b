#!/usr/bin/env python3
"""summary.py: one closing line for the whole suite, from cmocka's logs, pytest's JUnit XML and
the browser tests' TAP output.

The line starts "loket: P passed, F failed, S skipped" (the sum over the unit tests, every
integration run, one per storage driver: tests/pytest-junit-DRIVER.xml, and the browser tests:
tests/browser-tap.txt, node --test's counts); what each part counted follows in parentheses,
with the tests a run deselected (sqlite_only on pgsql)."""
import glob
import os
import re
import sys
import xml.etree.ElementTree as ET

builddir = sys.argv[1] if len(sys.argv) > 1 else "."
passed = failed = skipped = 0
parts = []
u_pass = u_fail = u_skip = 0
for log in sorted(glob.glob(os.path.join(builddir, "tests/unit/test_*.log"))):
    text = open(log, errors="replace").read()
    u_pass += sum(int(n) for n in re.findall(r"^\[  PASSED  \] (\d+) test", text, re.M))
    u_fail += sum(int(n) for n in re.findall(r"^\[  FAILED  \] (\d+) test", text, re.M))
    u_skip += sum(int(n) for n in re.findall(r"^\[  SKIPPED \] (\d+) test", text, re.M))
passed, failed, skipped = u_pass, u_fail, u_skip
parts.append("unit %d/%d/%d" % (u_pass, u_fail, u_skip))
for junit in sorted(glob.glob(os.path.join(builddir, "tests/pytest-junit*.xml"))):
    m = re.search(r"pytest-junit-?(\w*)\.xml$", junit)
    driver = m.group(1) if m and m.group(1) else "sqlite"
    p = f = s = 0
    deselected = 0
    try:
        root = ET.parse(junit).getroot()
    except ET.ParseError as e:
        # A run that died mid-write did not finish: that is a failure, not nothing.
        failed += 1
        parts.append("%s: unreadable %s (%s)" % (driver, os.path.basename(junit), e))
        continue
    for suite in root.iter("testsuite"):
        tests = int(suite.get("tests", 0))
        fail = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        p += tests - fail - skip
        f += fail
        s += skip
        for prop in suite.iter("property"):
            if prop.get("name") == "loket_driver":
                driver = prop.get("value")
            elif prop.get("name") == "loket_deselected":
                deselected = int(prop.get("value") or 0)
    passed += p
    failed += f
    skipped += s
    parts.append("%s %d/%d/%d%s" % (driver, p, f, s,
                                    " +%d sqlite_only deselected" % deselected if deselected else ""))
# The browser tests (tests/browser.sh keeps node --test's TAP output): its closing counts.
# A cancelled test (a failed hook, a timeout) failed; a todo did not run, like a skip.
tap = os.path.join(builddir, "tests/browser-tap.txt")
if os.path.exists(tap):
    text = open(tap, errors="replace").read()
    counts = {}
    for key in ("tests", "pass", "fail", "skipped", "cancelled", "todo"):
        found = re.findall(r"^# %s (\d+)$" % key, text, re.M)
        if found:
            counts[key] = int(found[-1])
    if "tests" not in counts:
        failed += 1
        parts.append("browser: no totals in %s (the run did not finish)" % os.path.basename(tap))
    else:
        b_pass = counts.get("pass", 0)
        b_fail = counts.get("fail", 0) + counts.get("cancelled", 0)
        b_skip = counts.get("skipped", 0) + counts.get("todo", 0)
        passed += b_pass
        failed += b_fail
        skipped += b_skip
        parts.append("browser %d/%d/%d" % (b_pass, b_fail, b_skip))
# A whole suite automake skipped (exit 77: cmocka or pytest missing) counts as one skip.
for trs in sorted(glob.glob(os.path.join(builddir, "tests/**/*.trs"), recursive=True)):
    if re.search(r"^:test-result: SKIP", open(trs, errors="replace").read(), re.M):
        skipped += 1
        parts.append("%s skipped whole" % os.path.basename(trs)[:-4])
print("loket: %d passed, %d failed, %d skipped (passed/failed/skipped: %s)"
      % (passed, failed, skipped, "; ".join(parts)))
sys.exit(1 if failed else 0)
