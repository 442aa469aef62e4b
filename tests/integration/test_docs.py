"""The plugin guide shows the plugin the tests load, byte for byte."""
import os
import re

SRCDIR = os.environ.get("LOKET_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def test_plugin_guide_shows_the_tested_plugin():
    guide = open(os.path.join(SRCDIR, "docs", "plugins.md"), encoding="utf-8").read()
    source = open(os.path.join(SRCDIR, "plugins", "hello", "hello.c"), encoding="utf-8").read()
    blocks = re.findall(r"```c\n(.*?)```", guide, re.S)
    assert blocks, "docs/plugins.md has no C code block"
    assert blocks[0] == source, "docs/plugins.md and plugins/hello/hello.c differ; update the guide"


def test_architecture_names_every_core_file():
    page = open(os.path.join(SRCDIR, "docs", "architecture.md"), encoding="utf-8").read()
    core = sorted(f for f in os.listdir(os.path.join(SRCDIR, "core")) if f.endswith(".c"))
    missing = [f for f in core if "`%s`" % f not in page]
    assert not missing, "docs/architecture.md does not map: %s" % ", ".join(missing)
