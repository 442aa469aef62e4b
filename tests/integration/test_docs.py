"""The documents say what the code does: the plugin guide shows the plugin the tests load,
byte for byte; the architecture page maps every core file; every route docs/api.md documents
is served, and what it says is not built is not."""
import os
import re

import pytest

from api_fixtures import module_api, unique_email
from conftest import free_port

SRCDIR = os.environ.get("LOKET_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def test_plugin_guide_shows_the_tested_plugin():
    guide = open(os.path.join(SRCDIR, "docs", "plugins.md"), encoding="utf-8").read()
    source = open(os.path.join(SRCDIR, "plugins", "hello", "hello.c"), encoding="utf-8").read()
    blocks = re.findall(r"```c\n(.*?)```", guide, re.S)
    assert blocks, "docs/plugins.md has no C code block"
    assert blocks[0] == source, "docs/plugins.md and plugins/hello/hello.c differ; update the guide"


def test_architecture_names_every_core_file():
    page = open(os.path.join(SRCDIR, "docs", "architecture.md"), encoding="utf-8").read()
    top = os.path.join(SRCDIR, "core")
    core = sorted("%s/%s" % (layer, f) for layer in os.listdir(top)
                  if os.path.isdir(os.path.join(top, layer))
                  for f in os.listdir(os.path.join(top, layer)) if f.endswith(".c"))
    assert core, "no core files under %s" % top
    missing = [f for f in core if "`%s`" % f not in page]
    assert not missing, "docs/architecture.md does not map: %s" % ", ".join(missing)


# docs/api.md: every documented route answers --------------------------------------------------

ROUTE = re.compile(r"`(GET|POST|PATCH|PUT|DELETE) ((?:/|\.\.\./)[^`\s?]*)[^`]*`")


def documented_routes():
    """(method, path pattern) of every route docs/api.md names, and those it says are not
    built yet (named in its "Not built yet" paragraph)."""
    page = open(os.path.join(SRCDIR, "docs", "api.md"), encoding="utf-8").read()
    unbuilt_text = "".join(p for p in re.split(r"\n\s*\n", page) if "Not built yet" in p)
    unbuilt = set(re.findall(r"`(/[^`\s]*)`", unbuilt_text))
    routes = []
    for m in ROUTE.finditer(page):
        method, path = m.group(1), m.group(2)
        # The status-change table writes `POST .../resolve` for /api/v1/contacts/{id}/resolve.
        if path.startswith(".../"):
            path = "/api/v1/contacts/{id}/" + path[4:]
        if (method, path) not in routes:
            routes.append((method, path))
    return routes, unbuilt


@pytest.fixture(scope="module")
def docs_api(tmp_path_factory):
    # chan_email (no mailboxes) for the email routes the page documents.
    yield from module_api(tmp_path_factory, "docs", plugins=["chan_email"],
                          plugin_conf={"chan_email": {"smtp_port": str(free_port()),
                                                      "retry_min": "1h"}})


def test_every_documented_route_answers(docs_api):
    """Each route docs/api.md documents is served by the daemon with the documented method:
    never the router's 404 ("no such resource") or a 405, never a 5xx; without a token a
    401 (or 200 where the page calls the route public)."""
    api = docs_api
    routes, unbuilt = documented_routes()
    assert len(routes) >= 15, routes
    c = api.in_state("escalated")
    ids = {"contacts": c["id"], "parties": c["party_id"] or
           api.create(channel="phone", party={"email": unique_email("docs")})["party_id"],
           "tasks": c["tasks"][0]["id"]}
    problems = []
    for method, pattern in routes:
        segs = pattern.strip("/").split("/")
        path = "/" + "/".join(str(ids.get(segs[i - 1], 1)) if s.startswith("{") else s
                              for i, s in enumerate(segs))
        body = {} if method in ("POST", "PATCH", "PUT") else None
        # A stream never ends: HEAD shows it is routed without reading it forever.
        if path == "/api/v1/events":
            method = "HEAD"
        anon = api.call(method, path, body)
        if anon.status not in (200, 401):
            problems.append("%s %s without a token: %r" % (method, path, anon))
        r = api.call(method, path, body, token=api.admin)
        routed = not (r.status == 404 and r.json and r.json.get("detail") == "no such resource")
        if not routed or r.status == 405 or r.status >= 500:
            problems.append("%s %s (documented as %s): %r" % (method, path, pattern, r))
    assert not problems, "documented in docs/api.md but not served:\n" + "\n".join(problems)
    # What the page says is not built yet is not served either (so the page is honest).
    for path in unbuilt:
        if "{" in path or not path.startswith("/"):
            continue
        r = api.call("GET", path, token=api.admin)
        assert r.status == 404, "docs/api.md says %s is not built yet, but it answers %r" % (
            path, r)
