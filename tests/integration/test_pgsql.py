"""What only the pgsql driver has: nodes sharing one register, and PostgreSQL going away
under a running daemon.

- One Idempotency-Key posted at once from many threads, to two daemons on one register,
  makes one contact: the key is a unique constraint, not a look before the insert.
- PostgreSQL stopped: intake answers 503 with Retry-After and /healthz names PostgreSQL;
  started again, loketd reconnects by itself and the next POST is 201.
- Every 201 acknowledged while PostgreSQL restarts under a 10-second load from several client
  threads is in the register exactly once afterwards, and a client retrying its 503s with the
  same key never makes a second.
- A COMMIT whose answer was lost (the test hook LOKET_PGSQL_FAULT, docs/storage.md) is decided
  by asking the server (txid_status): one that reached it answers 201 and is stored once, one
  that never left answers 503 and nothing of it is stored.
- /metrics of a pgsql node shows its connections, statement latency and reconnects.
"""
import re
import threading
import time
import uuid

import pytest

import conftest
from api_fixtures import ORG_CONF, Api, finish_api, make_api
from conftest import REGISTERS, Loketd

pytestmark = pytest.mark.pgsql_only("the pgsql driver's register (LOKET_TEST_DRIVER=pgsql)")


def post(api, token, body, key=None, timeout=20):
    headers = {"Idempotency-Key": key} if key else None
    return api.call("POST", "/api/v1/contacts", body, token=token, headers=headers,
                    timeout=timeout)


def wait_healthy(api, timeout=30):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = api.call("GET", "/healthz", timeout=2)
        if last.status == 200:
            return last
        time.sleep(0.1)
    raise AssertionError("loketd did not become healthy again: %r" % last)


def count_contacts(api, where="TRUE", params=()):
    db = api.d.db()
    try:
        return db.execute("SELECT count(*) FROM contacts WHERE " + where, params).fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def api(tmp_path):
    a = make_api(tmp_path / "node1")
    yield a
    finish_api(a)


@pytest.fixture
def second_node(api, tmp_path):
    """Another daemon on the same register (the same database), as a second node. The
    intake token is made first: a node reads the tokens when it starts."""
    api.token("t-intake", "intake")
    conninfo = re.findall(r"^conninfo = (.*)$", api.d.config_text, re.M)[-1]
    (tmp_path / "node2").mkdir()
    d = Loketd(tmp_path / "node2",
               extra=ORG_CONF + "\n[storage]\ndriver = pgsql\nconninfo = %s\n" % conninfo)
    d.start()
    b = Api(d)
    yield b
    finish_api(b)


def test_one_idempotency_key_posted_concurrently_to_two_nodes_makes_one_contact(api,
                                                                               second_node):
    token = api.token("t-intake", "intake")
    key = "idem-" + uuid.uuid4().hex
    body = {"channel": "web", "subject": "Parkeerkaart", "body": "Graag een kaart.",
            "party": {"name": "Els Janssens", "email": "els.%s@example.be" % key[-8:]}}
    answers, errors = [], []
    start = threading.Barrier(16)

    def client(node):
        start.wait()
        try:
            answers.append(post(node, token, body, key))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(api if i % 2 else second_node,))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    statuses = sorted(r.status for r in answers)
    assert statuses.count(201) == 1, "exactly one first answer expected: %s" % statuses
    assert set(statuses) <= {200, 201}, [r for r in answers if r.status not in (200, 201)]
    ids = {r.json["id"] for r in answers}
    assert len(ids) == 1, "one key, several contacts: %s" % ids
    assert count_contacts(api) == 1
    # The person's party was made once too, by whichever node came first.
    db = api.d.db()
    try:
        assert db.execute("SELECT count(*) FROM parties").fetchone()[0] == 1
    finally:
        db.close()


def test_same_new_person_at_two_nodes_at_once_gets_one_party(api, second_node):
    token = api.token("t-intake", "intake")
    email = "piet.%s@example.be" % uuid.uuid4().hex[:8]
    answers = []
    start = threading.Barrier(12)

    def client(i):
        start.wait()
        node = api if i % 2 else second_node
        answers.append(post(node, token, {"channel": "web", "subject": "Vraag %d" % i,
                                          "body": "x", "party": {"name": "Piet",
                                                                 "email": email}}))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status for r in answers] == [201] * 12, answers
    db = api.d.db()
    try:
        assert db.execute("SELECT count(*) FROM parties").fetchone()[0] == 1
        assert db.execute("SELECT count(DISTINCT party_id) FROM contacts").fetchone()[0] == 1
        refs = [r[0] for r in db.execute("SELECT reference FROM contacts").fetchall()]
    finally:
        db.close()
    assert len(set(refs)) == 12, "references handed out twice across nodes: %s" % refs


def test_postgresql_stopped_answers_503_then_loketd_reconnects_by_itself(api):
    token = api.token("t-intake", "intake")
    assert post(api, token, {"channel": "web", "subject": "voor", "body": "x"}).status == 201
    cluster = REGISTERS.start()
    cluster.stop_server()
    try:
        r = post(api, token, {"channel": "web", "subject": "tijdens", "body": "x"},
                 key="down-" + uuid.uuid4().hex)
        assert r.status == 503, r
        assert r.headers.get("Retry-After"), "a 503 without Retry-After: %r" % r
        assert "stored" in r.json["detail"], r.json
        h = api.call("GET", "/healthz", timeout=5)
        assert h.status == 503 and "PostgreSQL" in h.json["detail"], h
    finally:
        cluster.start_server()
    wait_healthy(api)
    r = post(api, token, {"channel": "web", "subject": "na", "body": "x"})
    assert r.status == 201, r
    # Reads reconnect too: the contact reads back on the node's reader pool.
    assert api.contact(r.json["id"])["subject"] == "na"
    assert api.d.running()
    assert count_contacts(api, "subject = ?", ("tijdens",)) == 0


def test_every_201_acknowledged_across_a_postgresql_restart_is_there_exactly_once(api):
    """The issue's words: PostgreSQL restarted during a 10-second load, then every 201 present
    exactly once. Eight client threads post (retrying their 503s with the same key) for 10 s;
    PostgreSQL is stopped at 3 s and started again a second later."""
    token = api.token("t-intake", "intake")
    stop = threading.Event()
    acked = {}   # key -> contact id of its 201 (or 200 replay)
    lock = threading.Lock()
    errors = []

    def client(t):
        n = 0
        while not stop.is_set():
            n += 1
            key = "k-%d-%d-%s" % (t, n, uuid.uuid4().hex[:6])
            body = {"channel": "web", "subject": key, "body": "x"}
            deadline = time.monotonic() + 40
            while True:
                try:
                    r = post(api, token, body, key, timeout=30)
                except OSError:
                    r = None
                if r is not None and r.status in (200, 201):
                    with lock:
                        if key in acked and acked[key] != r.json["id"]:
                            errors.append("key %s answered with two ids" % key)
                        acked[key] = r.json["id"]
                    break
                if r is not None and r.status != 503:
                    errors.append("%r" % r)
                    return
                if time.monotonic() > deadline:
                    errors.append("key %s never stored after PostgreSQL came back" % key)
                    return
                time.sleep(0.1)  # what Retry-After asks, sooner

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    began = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(3.0)
    cluster = REGISTERS.start()
    with lock:
        before_stop = len(acked)
    cluster.stop_server()
    time.sleep(1.0)
    cluster.start_server()
    time.sleep(max(0.0, 10.0 - (time.monotonic() - began)))
    stop.set()
    for t in threads:
        t.join(90)
        assert not t.is_alive(), "a client hangs"
    assert not errors, errors[:5]
    assert before_stop > 5, "too little load before the stop to mean anything: %d" % before_stop
    assert len(acked) > before_stop + 5, "too little load after the restart: %d then %d" % (
        before_stop, len(acked))
    db = api.d.db()
    try:
        rows = db.execute("SELECT subject, count(*), min(id) FROM contacts GROUP BY subject"
                          ).fetchall()
    finally:
        db.close()
    stored = {r[0]: (r[1], r[2]) for r in rows}
    for key, cid in acked.items():
        assert key in stored, "acknowledged contact %s (key %s) is gone" % (cid, key)
        assert stored[key] == (1, cid), "key %s: %r, acknowledged as %s" % (key, stored[key], cid)
    # Nothing stored that nobody was told about, beyond the last answers in flight.
    assert set(stored) <= set(acked), sorted(set(stored) - set(acked))[:5]


# A COMMIT whose answer was lost -----------------------------------------------------------

def metrics_of(api):
    r = api.call("GET", "/metrics", token=api.admin)
    assert r.status == 200, r
    return r.body.decode()


def metric_value(text, name_and_labels):
    m = re.search(r"^%s (\S+)$" % re.escape(name_and_labels), text, re.M)
    return float(m.group(1)) if m else None


def faulted_api(tmp_path, monkeypatch, fault):
    """A node whose writer cuts its connection at COMMIT number N, N chosen as the COMMIT
    of the first contact posted after this returns: the COMMITs so far (tokens) are on
    /metrics, read from a node without the hook on the same register."""
    probe = make_api(tmp_path / "probe")
    try:
        probe.token("t-intake", "intake")
        probe.admin  # noqa: B018 - the admin token is made now, before the count
        commits = metric_value(metrics_of(probe), "loket_store_commits_total")
    finally:
        finish_api(probe)
    monkeypatch.setenv("LOKET_PGSQL_FAULT", "%s:%d" % (fault, int(commits) + 1))
    a = make_api(tmp_path / "node")
    monkeypatch.delenv("LOKET_PGSQL_FAULT")
    return a


def test_commit_whose_answer_was_lost_is_resolved_as_stored_by_asking_the_server(
        tmp_path, monkeypatch):
    api = faulted_api(tmp_path, monkeypatch, "commit-lost")
    try:
        token = api.token("t-intake", "intake")
        api.admin  # noqa: B018 - same COMMITs as the probe: tokens first
        key = "lost-" + uuid.uuid4().hex
        body = {"channel": "web", "subject": "verloren antwoord", "body": "x"}
        r = post(api, token, body, key)
        log = api.d.log()
        assert "connection cut after sending COMMIT" in log, log[-3000:]
        assert re.search(r"broke during COMMIT of 1 writes \(txid \d+\); the server says: "
                         r"committed", log), log[-3000:]
        # The write that reached the server is answered as stored, and it is stored once.
        assert r.status == 201, r
        cid = r.json["id"]
        assert count_contacts(api, "subject = ?", ("verloren antwoord",)) == 1
        assert api.contact(cid)["subject"] == "verloren antwoord"
        again = post(api, token, body, key)
        assert again.status == 200 and again.json["id"] == cid, again
        assert count_contacts(api, "subject = ?", ("verloren antwoord",)) == 1
        # Its event was delivered with it, and the node goes on writing.
        assert post(api, token, {"channel": "web", "subject": "daarna", "body": "x"}
                    ).status == 201
    finally:
        finish_api(api)


def test_commit_that_never_reached_the_server_answers_503_and_stores_nothing(
        tmp_path, monkeypatch):
    api = faulted_api(tmp_path, monkeypatch, "commit-unsent")
    try:
        token = api.token("t-intake", "intake")
        api.admin  # noqa: B018
        key = "unsent-" + uuid.uuid4().hex
        body = {"channel": "web", "subject": "nooit verstuurd", "body": "x"}
        r = post(api, token, body, key)
        log = api.d.log()
        assert "connection cut before sending COMMIT" in log, log[-3000:]
        assert re.search(r"broke during COMMIT of 1 writes \(txid \d+\); the server says: "
                         r"aborted", log), log[-3000:]
        assert r.status == 503, r
        assert r.headers.get("Retry-After"), r
        assert "nothing of this request was stored" in r.json["detail"], r.json
        assert count_contacts(api, "subject = ?", ("nooit verstuurd",)) == 0
        # The client's retry with the same key is a first write now: stored once.
        again = post(api, token, body, key)
        assert again.status == 201, again
        assert count_contacts(api, "subject = ?", ("nooit verstuurd",)) == 1
    finally:
        finish_api(api)


def test_pgsql_fault_hook_that_does_not_parse_stops_the_start_with_a_clear_error(
        tmp_path, monkeypatch):
    monkeypatch.setenv("LOKET_PGSQL_FAULT", "commit-lost:soon")
    d = Loketd(tmp_path, extra=ORG_CONF)
    try:
        assert d.start_fails() != 0
    finally:
        d.stop()
        d.close()
    assert "LOKET_PGSQL_FAULT" in d.log() and "commit-lost:N" in d.log(), d.log()[-2000:]


# Metrics ---------------------------------------------------------------------------------

def test_pgsql_node_metrics_show_connections_statement_latency_and_reconnects(api):
    token = api.token("t-intake", "intake")
    r = post(api, token, {"channel": "web", "subject": "meten", "body": "x"})
    assert r.status == 201, r
    api.contact(r.json["id"])
    text = metrics_of(api)
    # Pool connections: the writer and the readers ([storage] pool, 4 by default, + 1).
    assert metric_value(text, "loket_store_connections") == 6, text
    # Statement latency, per kind of connection: the POST's statements and the GET's.
    for conn in ("writer", "reader"):
        n = metric_value(text, 'loket_store_statement_seconds_count{conn="%s"}' % conn)
        assert n is not None and n > 0, (conn, text)
        assert metric_value(text, 'loket_store_statement_seconds_sum{conn="%s"}' % conn) > 0
    assert "# TYPE loket_store_statement_seconds histogram" in text
    assert metric_value(text, "loket_store_reconnects_total") == 0
    # PostgreSQL restarted: the writer reconnects, and the counter says so.
    cluster = REGISTERS.start()
    cluster.stop_server()
    try:
        assert post(api, token, {"channel": "web", "subject": "x", "body": "x"}).status == 503
    finally:
        cluster.start_server()
    wait_healthy(api)
    assert post(api, token, {"channel": "web", "subject": "weer", "body": "x"}).status == 201
    text = metrics_of(api)
    assert metric_value(text, "loket_store_reconnects_total") >= 1, text
    assert metric_value(text, "loket_store_connections") >= 1, text


# Two nodes writing at once ---------------------------------------------------------------

def test_two_nodes_posting_on_every_channel_at_once_never_deadlock(api, second_node):
    """Each new contact moves its (channel, status) count. Two nodes' group commits that
    moved those rows in their own orders deadlocked: PostgreSQL broke the tie after
    deadlock_timeout (1 s), so writes waited seconds and some answered 503. Ten client
    threads per node post on all four channels for 4 s: every answer is a 201, in time."""
    token = api.token("t-intake", "intake")
    channels = ["web", "phone", "email", "counter"]
    stop = threading.Event()
    lock = threading.Lock()
    bad, slow, done = [], [], [0]

    def client(node, t):
        n = 0
        while not stop.is_set():
            n += 1
            ch = channels[(t + n) % 4]
            t0 = time.monotonic()
            r = post(node, token, {"channel": ch, "subject": "c-%d-%d" % (t, n), "body": "x"})
            took = time.monotonic() - t0
            with lock:
                done[0] += 1
                if r.status != 201:
                    bad.append(r)
                if took >= 0.9:
                    slow.append((ch, round(took, 2)))

    threads = [threading.Thread(target=client, args=(api if t % 2 else second_node, t))
               for t in range(20)]
    for t in threads:
        t.start()
    time.sleep(4.0)
    stop.set()
    for t in threads:
        t.join(60)
    assert not bad, bad[:3]
    assert done[0] > 40, "too little load to mean anything: %d" % done[0]
    log = api.d.log() + second_node.d.log()
    assert "deadlock" not in log, [l for l in log.splitlines() if "deadlock" in l][:3]
    assert not slow, "%d of %d posts waited a second or more (a deadlock?): %s" % (
        len(slow), done[0], slow[:5])
    db = api.d.db()
    try:
        counted = db.execute("SELECT coalesce(sum(n), 0) FROM counts WHERE status = 'open'"
                             ).fetchone()[0]
        stored = db.execute("SELECT count(*) FROM contacts").fetchone()[0]
    finally:
        db.close()
    assert counted == stored == done[0], (counted, stored, done[0])
