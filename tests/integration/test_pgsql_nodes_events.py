"""Several nodes, one register: register events and reloads reach every node.

Two daemons share one PostgreSQL register, each with the hello plugin, which subscribes to
contacts created and shows what it heard on /hello-events (a count and the last 16 ids):
- a contact posted to node A reaches the plugin on node B once, with the id A's plugin saw;
- contacts posted alternately to A and B reach both plugins, in the same id order, none
  missing, none twice;
- the rules of a follow-up event run once, on the node that made the write, not once per
  node;
- `loketctl reload` on A makes B reload its own files;
- B's listener comes back after PostgreSQL restarts and misses no event written meanwhile.
"""
import re

import pytest

from api_fixtures import ORG_CONF, Api, finish_api
from conftest import REGISTERS, SLOW, Loketd, wait_for
from test_rules_support import history_of, rule_runs

pytestmark = pytest.mark.pgsql_only("nodes sharing one PostgreSQL register")

FOLLOW_UP_RULES = """
loket.on("resolved", function(c) c:tag("ev-resolved") end)
"""


def rules_conf(rules_dir):
    return "[rules]\ndir = %s\n" % rules_dir


@pytest.fixture
def nodes(tmp_path):
    """Node A and node B (Api objects) on one register, each with hello and rules files of
    its own (dir rules_a, rules_b)."""
    made = []
    try:
        dirs = []
        for name in ("a", "b"):
            rules = tmp_path / ("rules_" + name)
            rules.mkdir()
            (rules / "10-follow-up.lua").write_text(FOLLOW_UP_RULES)
            dirs.append(rules)
        (tmp_path / "a").mkdir()
        a = Loketd(tmp_path / "a", plugins=["hello"], extra=ORG_CONF + rules_conf(dirs[0]))
        a.start()
        made.append(Api(a))
        # The tokens first: a node reads them when it starts.
        made[0].token("t-agent", "agent")
        made[0].token("t-admin", "admin")
        conninfo = re.findall(r"^conninfo = (.*)$", a.config_text, re.M)[-1]
        (tmp_path / "b").mkdir()
        b = Loketd(tmp_path / "b", plugins=["hello"],
                   extra=ORG_CONF + rules_conf(dirs[1]) +
                   "\n[storage]\ndriver = pgsql\nconninfo = %s\n" % conninfo)
        b.start()
        api_b = Api(b)
        api_b.tokens = dict(made[0].tokens)
        made.append(api_b)
        yield made[0], made[1], dirs
    finally:
        for api in reversed(made):
            finish_api(api)


def metrics(api):
    r = api.call("GET", "/metrics", token=api.admin)
    assert r.status == 200, r
    return r.body.decode()


def heard(api):
    return api.ok("GET", "/hello-events")


def created_ids(api, after=0):
    """The contact.created event ids in the register after id `after`, in id order."""
    con = api.d.db()
    try:
        return [r[0] for r in con.execute(
            "SELECT id FROM events WHERE kind = 'contact.created' AND id > ? ORDER BY id",
            (after,)).fetchall()]
    finally:
        con.close()


def wait_heard(api, count, timeout=10 * SLOW):
    got = wait_for(lambda: (lambda h: h if h["contacts_created"] >= count else None)(heard(api)),
                   timeout)
    assert got, "node heard %r, expected %d contacts created; log:\n%s" % (
        heard(api), count, api.d.log()[-3000:])
    return got


def test_a_contact_posted_to_node_a_reaches_a_plugin_on_node_b_once_with_the_same_id(nodes):
    a, b, _ = nodes
    c = a.create(subject="vraag op knooppunt A")
    on_a = heard(a)
    assert on_a["contacts_created"] == 1, on_a
    on_b = wait_heard(b, 1)
    assert on_b["ids"] == on_a["ids"] == created_ids(a), (on_a, on_b)
    assert on_b["last_created"] == {"status": "open", "channel": "phone",
                                    "scope": {"department": None, "organisation": "gemeente",
                                              "confidential": False}}, on_b
    # Once: nothing more arrives later (another node's event is not handed twice).
    a.create(subject="nog een vraag")
    on_b = wait_heard(b, 2)
    assert on_b["contacts_created"] == 2 and len(set(on_b["ids"])) == 2, on_b
    assert heard(a)["contacts_created"] == 2
    assert created_ids(a)[0] == on_a["ids"][0]
    assert c["id"] > 0


def test_contacts_posted_alternately_reach_both_nodes_in_one_id_order_none_missing_none_twice(
        nodes):
    a, b, _ = nodes
    total = 0
    # Rounds of 10: hello keeps the last 16 ids, so each round is seen whole.
    for rnd in range(2):
        before = created_ids(a)[-1] if total else 0
        for i in range(10):
            (a if i % 2 == 0 else b).create(subject="vraag %d.%d" % (rnd, i))
        total += 10
        want = created_ids(a, before)
        assert len(want) == 10, want
        for node in (a, b):
            h = wait_heard(node, total)
            # Exactly the count: none twice (a second copy would count again).
            assert h["contacts_created"] == total, h
            # None missing, in the register's id order, on both nodes alike.
            assert h["ids"][-10:] == want, (h, want)
    # Settled: nothing late arrives on either node.
    assert heard(a)["contacts_created"] == heard(b)["contacts_created"] == 20


def test_follow_up_rules_run_once_on_the_node_that_wrote_not_on_every_node(nodes):
    a, b, _ = nodes
    c = a.create(subject="vraag")
    wait_heard(b, 1)
    # Not a.action(): that compares the answer with a read, and the follow-up rule this
    # test is about may already have tagged the contact by the time of the read.
    r = a.call("POST", "/api/v1/contacts/%s/resolve" % c["id"], {"answer": "beantwoord"},
               token=a.admin)
    assert r.status == 200 and r.json["status"] == "resolved", r

    def tagged():
        got = a.contact(c["id"])
        return got if "ev-resolved" in got["tags"] else None
    got = wait_for(tagged, 10 * SLOW)
    assert got, a.contact(c["id"])
    # B has heard the change too (its plugin sees every node), yet its rules stayed still.
    b.create(subject="later op B")
    wait_heard(a, 2)
    got = a.contact(c["id"])
    runs = history_of(got, actor_prefix="rule:10-follow-up.lua")
    assert len(runs) == 1, got["history"]
    assert got["tags"].count("ev-resolved") == 1, got
    # The rule's runs as each node counts them: one on A, none on B.
    assert rule_runs(metrics(a), "10-follow-up.lua:2", "ok") == 1, metrics(a)
    assert rule_runs(metrics(b), "10-follow-up.lua:2", "ok") in (None, 0), metrics(b)


def test_loketctl_reload_on_node_a_makes_node_b_reload_its_own_files(nodes):
    a, b, dirs = nodes
    # Only B's rules get a new file: each node reloads its own.
    (dirs[1] / "20-new.lua").write_text(
        'loket.on("contact", function(c) c:tag("nieuw") end)\n')
    before = b.create(subject="voor de reload")
    assert "nieuw" not in before["tags"], before
    mark = len(b.d.log())
    r = a.d.ctl("reload")
    assert r.returncode == 0, r.stderr + a.d.log()
    b.d.wait_log(r"another node asked for a reload", after=mark)
    b.d.wait_log(r"reloaded config=", after=mark)
    after = b.create(subject="na de reload")
    assert "nieuw" in after["tags"], after
    # A reloaded once, for its own command; it did not hear its own broadcast back.
    assert "nieuw" not in a.create(subject="op A")["tags"]
    assert "another node asked for a reload" not in a.d.log()
    assert len(re.findall(r"reloaded config=", a.d.log())) == 1, a.d.log()
    assert len(re.findall(r"reloaded config=", b.d.log()[mark:])) == 1, b.d.log()


def test_node_b_listener_reconnects_after_postgresql_restarts_and_misses_nothing(nodes):
    a, b, _ = nodes
    a.create(subject="voor de herstart")
    wait_heard(b, 1)
    cluster = REGISTERS.start()
    mark = len(b.d.log())
    cluster.stop_server()
    try:
        b.d.wait_log(r"listener: lost its connection", after=mark)
    finally:
        cluster.start_server()

    def posted():
        r = a.call("POST", "/api/v1/contacts", {"channel": "phone", "subject": "na"},
                   token=a.agent)
        return r if r.status == 201 else None
    # Written as soon as A's writer is back, whether or not B's listener is back yet.
    assert wait_for(posted, 30 * SLOW), a.d.log()[-2000:]
    for i in range(3):
        a.create(subject="na de herstart %d" % i)
    b.d.wait_log(r"listener: reconnected; reading the events after id \d+", after=mark)
    h = wait_heard(b, 5)
    want = created_ids(a)
    assert h["contacts_created"] == 5, h
    assert h["ids"] == want, (h, want)
