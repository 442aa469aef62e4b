"""POST /api/v1/rules/reload on several nodes sharing one PostgreSQL register (docs/api.md,
"Rules (admin)"): as `loketctl reload`, node A reloads and asks node B, which reloads its own
rules folder; a broken folder on A answers 422 with file:line and tells nobody.
"""
import pytest

from test_pgsql_nodes_events import nodes  # noqa: F401 (a fixture)

pytestmark = pytest.mark.pgsql_only("nodes sharing one PostgreSQL register")


def test_reload_through_the_api_on_node_a_reloads_node_b(nodes):  # noqa: F811
    a, b, dirs = nodes
    (dirs[1] / "20-new.lua").write_text('loket.on("contact", function(c) c:tag("nieuw") end)\n')
    assert "nieuw" not in b.create(subject="voor de reload")["tags"]

    # Broken on A: 422 naming file:line, and B is not asked.
    (dirs[0] / "30-broken.lua").write_text('-- broken\nloket.on("contact", function(c)\n'
                                           '  local x = = 1\nend)\n')
    mark = len(b.d.log())
    r = a.call("POST", "/api/v1/rules/reload", {}, token=a.admin)
    assert r.status == 422 and "30-broken.lua:3" in r.body.decode(), r
    assert "another node asked for a reload" not in b.d.log()[mark:]
    assert "nieuw" not in b.create(subject="na de mislukte reload")["tags"]

    (dirs[0] / "30-broken.lua").unlink()
    doc = a.ok("POST", "/api/v1/rules/reload", {}, token=a.admin)
    assert doc["reloaded"] is True and doc["nodes_told"] is True, doc
    b.d.wait_log(r"another node asked for a reload", after=mark)
    b.d.wait_log(r"reloaded config=", after=mark)
    assert "nieuw" in b.create(subject="na de reload")["tags"]
    files = b.ok("GET", "/api/v1/rules", token=b.admin)["files"]
    assert files == ["10-follow-up.lua", "20-new.lua"], files
