"""GET /api/v1/events (docs/api.md, "Event stream"): the register's events as server-sent
events, each reader's scope applied to every event; resume with Last-Event-ID (none lost,
none twice), `event: reset` beyond the window, keep-alives, streams that outlive the request
timeout and do not hold up a clean stop, and a cap on open streams. Both drivers."""

import signal
import threading
import time

import pytest

from api_fixtures import finish_api, make_api, module_api
from conftest import SLOW, wait_for
from sse_client import Stream


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory, name="stream",
                          http={"stream_keepalive": "300ms"})


def stream(api, token, **kw):
    s = Stream(api.d.host, api.d.port, token=token, **kw)
    return s


def created(s, cid, timeout=5 * SLOW):
    return s.wait_event(lambda f: f["event"] == "contact.created"
                        and f["data"]["contact_id"] == cid, timeout)


def register_event_ids(api, after, kind="contact.created"):
    con = api.db()
    try:
        return [r[0] for r in con.execute(
            "SELECT id FROM events WHERE id > ? AND kind = ? ORDER BY id", (after, kind))]
    finally:
        con.close()


def test_an_agent_sees_a_contact_created_it_may_see(api):
    s = stream(api, api.agent)
    try:
        assert s.status == 200, s.raw
        assert s.headers["content-type"] == "text/event-stream", s.headers
        assert s.headers["cache-control"] == "no-store", s.headers
        c = api.create(subject="paspoort aanvragen")
        f = created(s, c["id"])
        assert f is not None, (s.body, api.d.log())
        d = f["data"]
        assert d["kind"] == "contact.created" and d["status"] == "open", d
        assert int(f["id"]) == d["id"] and d["task_id"] is None, f
        assert d["at"].endswith("Z"), d
        # Ids and statuses only: nothing the citizen said.
        assert "paspoort" not in f["raw"], f
    finally:
        s.close()


def test_a_backoffice_reader_sees_its_departments_only_and_no_foreign_confidential(api):
    bo = api.token("st-bo-bz", "backoffice", departments=["burgerzaken"],
                   organisation="gemeente")
    agent_ocmw = api.token("st-agent-ocmw", "agent", organisation="ocmw")
    s_bo, s_admin, s_agent = stream(api, bo), stream(api, api.admin), stream(api, agent_ocmw)
    try:
        other_dep = api.create(token=api.admin, department="omgeving", subject="bouwen")
        foreign_conf = api.create(token=api.admin, department="sociale_dienst",
                                  confidential=True, subject="schuldhulp")
        own_conf = api.create(token=api.admin, department="burgerzaken", confidential=True,
                              subject="adoptie")
        own = api.create(token=api.admin, department="burgerzaken", subject="rijbewijs")
        # Events come in id order: once the last one is there, every earlier one had its turn.
        assert created(s_bo, own["id"]) is not None, s_bo.body
        seen = {f["data"]["contact_id"] for f in s_bo.events()}
        assert own_conf["id"] in seen and own["id"] in seen, s_bo.body
        assert other_dep["id"] not in seen, "department B's contact reached department A"
        assert foreign_conf["id"] not in seen, "another organisation's confidential contact"
        # The admin sees every one of them.
        assert created(s_admin, own["id"]) is not None
        seen = {f["data"]["contact_id"] for f in s_admin.events()}
        assert {other_dep["id"], foreign_conf["id"], own_conf["id"], own["id"]} <= seen
        # An agent of the OCMW sees its organisation's confidential one, not the gemeente's.
        assert created(s_agent, own["id"]) is not None
        seen = {f["data"]["contact_id"] for f in s_agent.events()}
        assert foreign_conf["id"] in seen and own_conf["id"] not in seen, s_agent.body
        # A change that moves a contact out of the department is no news for it afterwards.
        api.ok("PATCH", "/api/v1/contacts/%d" % own["id"], {"department": "omgeving"})
        api.ok("PATCH", "/api/v1/contacts/%d" % own["id"], {"priority": "high"})
        marker = api.create(token=api.admin, department="burgerzaken", subject="marker")
        assert created(s_bo, marker["id"]) is not None
        changed = [f for f in s_bo.events("contact.changed")
                   if f["data"]["contact_id"] == own["id"]]
        assert changed == [], changed
    finally:
        for s in (s_bo, s_admin, s_agent):
            s.close()


def test_a_task_event_follows_its_contacts_scope(api):
    bo_om = api.token("st-bo-om", "backoffice", departments=["omgeving"],
                      organisation="gemeente")
    s = stream(api, bo_om)
    try:
        c = api.create(subject="bouwvergunning")
        api.ok("POST", "/api/v1/contacts/%d/escalate" % c["id"],
               {"department": "omgeving", "reason": "dossier"}, token=api.admin)
        f = s.wait_event(lambda f: f["event"] == "task.created"
                         and f["data"]["contact_id"] == c["id"])
        assert f is not None, s.body
        assert f["data"]["task_id"] > 0 and f["data"]["department"] == "omgeving", f
    finally:
        s.close()


def test_resume_with_last_event_id_sends_exactly_the_missed_events(api):
    s = stream(api, api.admin)
    first = api.create(subject="eerste")
    f = created(s, first["id"])
    assert f is not None
    last = int(f["id"])
    s.close()
    missed = [api.create(subject="gemist %d" % i)["id"] for i in range(3)]
    # Writes go on while the client reconnects: none may fall in the gap, none come twice.
    more = []
    stop = threading.Event()

    def writer():
        while not stop.is_set() and len(more) < 20:
            more.append(api.create(subject="tijdens")["id"])

    t = threading.Thread(target=writer)
    t.start()
    try:
        s2 = stream(api, api.admin, headers={"Last-Event-ID": str(last)})
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    try:
        final = api.create(subject="live")["id"]
        assert created(s2, final) is not None, s2.body
        got = [int(f["id"]) for f in s2.events("contact.created")]
        want = register_event_ids(api, last)
        assert got == want, (got, want)
        contacts = [f["data"]["contact_id"] for f in s2.events("contact.created")]
        assert contacts[:3] == missed and contacts[-1] == final, contacts
        assert not s2.events("reset"), s2.body
        # Every event id in the stream once, in increasing order.
        ids = [int(f["id"]) for f in s2.events() if f["id"] is not None]
        assert ids == sorted(set(ids)), ids
    finally:
        s2.close()


def test_resume_on_a_first_connect_with_the_query_parameter(api):
    before = register_event_ids(api, 0, kind="contact.created")
    last = before[-1] if before else 0
    c = api.create(subject="via query")
    s = stream(api, api.admin, path="/api/v1/events?last_event_id=%d" % last)
    try:
        f = created(s, c["id"])
        assert f is not None, s.body
        assert s.events("contact.created")[0]["data"]["contact_id"] == c["id"]
    finally:
        s.close()


def test_a_malformed_last_event_id_is_refused(api):
    s = stream(api, api.admin, headers={"Last-Event-ID": "abc"})
    try:
        assert s.status == 400, s.raw
        assert "Last-Event-ID" in s.problem["detail"], s.problem
    finally:
        s.close()


def test_a_stream_needs_a_staff_token(api):
    s = stream(api, None)
    try:
        assert s.status == 401
    finally:
        s.close()
    intake = api.token("st-intake", "intake")
    s = stream(api, intake)
    try:
        assert s.status == 403
    finally:
        s.close()


def test_keep_alive_comments_arrive(api):
    s = stream(api, api.agent)
    try:
        assert s.wait(lambda s: s.comments.count("keep-alive") >= 2, 5 * SLOW), s.body
    finally:
        s.close()


def test_a_client_that_leaves_is_freed(api):
    def streams():
        r = api.call("GET", "/metrics", token=api.admin)
        for line in r.body.decode().splitlines():
            if line.startswith("loket_http_streams "):
                return float(line.split()[1])
        return None

    base = streams()
    opened = [stream(api, api.agent) for _ in range(3)]
    assert wait_for(lambda: streams() == base + 3, 5 * SLOW), streams()
    for s in opened:
        s.close()
    assert wait_for(lambda: streams() == base, 5 * SLOW), streams()


def test_a_too_old_or_unknown_id_gives_reset_then_live(tmp_path):
    api = make_api(tmp_path / "w", http={"events_window": "1s", "events_backlog": "3"})
    try:
        old = api.create(subject="oud")
        old_id = register_event_ids(api, 0)[-1]
        time.sleep(1.5)
        api.create(subject="nieuw")
        s = stream(api, api.admin, headers={"Last-Event-ID": str(old_id - 1)})
        try:
            f = s.wait_event(lambda f: f["event"] in ("reset", "contact.created"))
            assert f is not None and f["event"] == "reset", s.body
            newest = register_event_ids(api, 0)[-1]
            assert int(f["id"]) == newest and f["data"]["last_event_id"] == newest, f
            assert not [x for x in s.events("contact.created")
                        if x["data"]["contact_id"] == old["id"]]
            live = api.create(subject="live")
            assert created(s, live["id"]) is not None
        finally:
            s.close()
        # More missed than a resume sends: reset too.
        mark = register_event_ids(api, 0)[-1]
        for i in range(4):
            api.create(subject="veel %d" % i)
        s = stream(api, api.admin, headers={"Last-Event-ID": str(mark)})
        try:
            f = s.wait_event(lambda f: True)
            assert f is not None and f["event"] == "reset", s.body
        finally:
            s.close()
        # An id the register never reached (another register's): reset, not silence.
        s = stream(api, api.admin, headers={"Last-Event-ID": str(mark + 100000)})
        try:
            f = s.wait_event(lambda f: True)
            assert f is not None and f["event"] == "reset", s.body
            live = api.create(subject="daarna")
            assert created(s, live["id"]) is not None, s.body
        finally:
            s.close()
    finally:
        finish_api(api)


def test_streams_outlive_the_request_timeout_and_are_capped(tmp_path):
    api = make_api(tmp_path / "t", http={"timeout": "1s", "stream_keepalive": "1h",
                                         "max_streams": "2"})
    try:
        a, b = stream(api, api.agent), stream(api, api.agent)
        try:
            c = stream(api, api.agent)
            assert c.status == 503, c.raw
            assert "too many event streams" in c.problem["detail"], c.problem
            c.close()
            # Idle longer than [http] timeout: still open, still delivering.
            time.sleep(2.5)
            assert not a.closed
            made = api.create(subject="na de pauze")
            assert created(a, made["id"]) is not None, (a.body, a.closed)
        finally:
            a.close()
            b.close()
        # A closed stream frees its place.
        assert wait_for(lambda: stream(api, api.agent).status == 200, 5 * SLOW)
    finally:
        finish_api(api)


def test_a_clean_stop_with_open_streams_is_prompt(tmp_path):
    api = make_api(tmp_path / "s")
    opened = [stream(api, api.agent) for _ in range(5)]
    try:
        started = time.monotonic()
        api.d.send_signal(signal.SIGTERM)
        rc = api.d.wait(timeout=10 * SLOW)
        took = time.monotonic() - started
        assert rc == 0, api.d.log()
        # Well within the drain's timeout: streams are not waited for.
        assert took < 3 * SLOW, (took, api.d.log())
        assert "drain timed out" not in api.d.log()
        for s in opened:
            assert s.wait_closed(2 * SLOW), s.body
    finally:
        for s in opened:
            s.close()
        finish_api(api)
