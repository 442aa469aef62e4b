#!/usr/bin/env python3
"""summary.py: one closing line for the whole suite, from cmocka's logs and pytest's JUnit XML."""
import glob
import os
import re
import sys
import xml.etree.ElementTree as ET

builddir = sys.argv[1] if len(sys.argv) > 1 else "."
passed = failed = skipped = 0
for log in sorted(glob.glob(os.path.join(builddir, "tests/unit/test_*.log"))):
    text = open(log, errors="replace").read()
    passed += sum(int(n) for n in re.findall(r"^\[  PASSED  \] (\d+) test", text, re.M))
    failed += sum(int(n) for n in re.findall(r"^\[  FAILED  \] (\d+) test", text, re.M))
    skipped += sum(int(n) for n in re.findall(r"^\[  SKIPPED \] (\d+) test", text, re.M))
for junit in sorted(glob.glob(os.path.join(builddir, "tests/pytest-junit*.xml"))):
    root = ET.parse(junit).getroot()
    for suite in root.iter("testsuite"):
        tests = int(suite.get("tests", 0))
        fail = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        passed += tests - fail - skip
        failed += fail
        skipped += skip
# A whole suite automake skipped (exit 77: cmocka or pytest missing) counts as one skip.
for trs in sorted(glob.glob(os.path.join(builddir, "tests/**/*.trs"), recursive=True)):
    if re.search(r"^:test-result: SKIP", open(trs, errors="replace").read(), re.M):
        skipped += 1
print(f"loket: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
