"""The event stream across nodes sharing one PostgreSQL register (docs/api.md, "Event
stream"): a stream on node B shows what node A stored, scoped like any other; a client that
resumes on node B with the id it last saw on node A (or on B) gets exactly what it missed,
none twice, while both nodes keep writing."""
import re
import threading
import time

import pytest

from api_fixtures import ORG_CONF, Api, finish_api
from conftest import SLOW, Loketd
from sse_client import Stream

pytestmark = pytest.mark.pgsql_only("nodes sharing one PostgreSQL register")


@pytest.fixture
def nodes(tmp_path):
    made = []
    try:
        (tmp_path / "a").mkdir()
        a = Loketd(tmp_path / "a", extra=ORG_CONF)
        a.start()
        made.append(Api(a))
        made[0].token("t-agent", "agent")
        made[0].token("t-admin", "admin")
        made[0].token("t-bo-om", "backoffice", departments=["omgeving"],
                      organisation="gemeente")
        conninfo = re.findall(r"^conninfo = (.*)$", a.config_text, re.M)[-1]
        (tmp_path / "b").mkdir()
        b = Loketd(tmp_path / "b", extra=ORG_CONF +
                   "\n[storage]\ndriver = pgsql\nconninfo = %s\n" % conninfo)
        b.start()
        api_b = Api(b)
        api_b.tokens = dict(made[0].tokens)
        made.append(api_b)
        yield made[0], made[1]
    finally:
        for api in reversed(made):
            finish_api(api)


def created_ids(api, after=0):
    con = api.d.db()
    try:
        return [r[0] for r in con.execute(
            "SELECT id FROM events WHERE kind = 'contact.created' AND id > ? ORDER BY id",
            (after,)).fetchall()]
    finally:
        con.close()


def stream(api, token, **kw):
    return Stream(api.d.host, api.d.port, token=token, **kw)


def created(s, cid, timeout=10 * SLOW):
    return s.wait_event(lambda f: f["event"] == "contact.created"
                        and f["data"]["contact_id"] == cid, timeout)


def test_a_stream_on_node_b_shows_what_node_a_stored_in_scope(nodes):
    a, b = nodes
    s_admin = stream(b, b.tokens["t-admin"])
    s_bo = stream(b, b.tokens["t-bo-om"])
    try:
        other = a.create(token=a.admin, department="burgerzaken", subject="elders")
        mine = a.create(token=a.admin, department="omgeving", subject="hier")
        f = created(s_admin, mine["id"])
        assert f is not None, (s_admin.body, b.d.log()[-2000:])
        assert created(s_admin, other["id"]) is not None
        assert created(s_bo, mine["id"]) is not None, s_bo.body
        assert other["id"] not in {x["data"]["contact_id"] for x in s_bo.events()}
        assert int(f["id"]) == created_ids(a)[-1]
    finally:
        s_admin.close()
        s_bo.close()


def test_resume_on_node_b_after_writes_on_node_a_misses_nothing(nodes):
    a, b = nodes
    s = stream(a, a.admin)
    first = a.create(subject="eerste")
    f = created(s, first["id"])
    assert f is not None
    last = int(f["id"])
    s.close()
    missed = [a.create(subject="gemist %d" % i)["id"] for i in range(3)]
    # Both nodes write while the client reconnects to B.
    stop = threading.Event()

    def writer(api):
        n = 0
        while not stop.is_set() and n < 15:
            api.create(subject="tijdens")
            n += 1

    threads = [threading.Thread(target=writer, args=(x,)) for x in (a, b)]
    for t in threads:
        t.start()
    try:
        s2 = stream(b, b.admin, headers={"Last-Event-ID": str(last)})
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        final = a.create(subject="live op A")["id"]
        assert created(s2, final) is not None, (s2.body, b.d.log()[-2000:])
        got = [int(x["id"]) for x in s2.events("contact.created")]
        assert got == created_ids(a, last), got
        assert [x["data"]["contact_id"] for x in s2.events("contact.created")][:3] == missed
        assert not s2.events("reset")
    finally:
        s2.close()
