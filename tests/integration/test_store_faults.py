"""What a client is told is what the register holds, also when the disk fails.

loketd runs with tests/fault/fault.so preloaded: a disk that fails writes or fsyncs of the
register's files on cue (ENOSPC, EIO), switched on and off through a control file while
contacts are posted concurrently. After a restart every contact answered 201 is there exactly
once with its history, and none answered 503 is there at all (docs/api.md, "When the register
cannot store"; docs/architecture.md, the writer).
"""

import base64
import http.client
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from api_fixtures import ORG_CONF, Api, assert_problem
from conftest import BUILDDIR, LOKETD, Loketd, wait_for

SHIM = os.path.join(BUILDDIR, "tests", "fault", ".libs", "fault.so")
# The shim fails the SQLite register's own files (loket.db*); a PostgreSQL register's disk
# is the server's.
pytestmark = pytest.mark.sqlite_only(reason="faults injected into the SQLite file's writes")
RETRY_AFTER = re.compile(r"^\d+$")


def preload():
    """LD_PRELOAD for loketd: the shim, after the sanitizer runtime when loketd has one."""
    if not os.path.exists(SHIM):
        pytest.fail("tests/fault/fault.so is not built; build it with `make check TESTS=`")
    libs = subprocess.run(["ldd", LOKETD], capture_output=True, text=True).stdout
    # The sanitizer runtime must come first; its interceptors then call into the shim.
    asan = re.search(r"^\s*libasan\.so\S* => (\S+)", libs, re.M)
    return ":".join(([asan.group(1)] if asan else []) + [SHIM])


class Disk:
    """The control file of the shim: what fails next."""

    def __init__(self, path):
        self.path = str(path)

    def fail(self, *rules):
        """Rules like "write ENOSPC 1 0" (see tests/fault/fault.c); none: a healthy disk."""
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(r + "\n" for r in rules))
        os.replace(tmp, self.path)

    def heal(self):
        self.fail()

    def fired(self):
        try:
            with open(self.path + ".fired") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


@pytest.fixture
def faulty(tmp_path, monkeypatch):
    """A started loketd on a disk that fails on cue: (api, disk)."""
    made = []

    def make(http=None, files="loket.db*"):
        where = tmp_path / ("d%d" % len(made))
        where.mkdir()
        d = Loketd(where, extra=ORG_CONF, http=http)
        disk = Disk(tmp_path / ("fault%d.ctl" % len(made)))
        # Inherited by loketd (and loketctl, which writes no register file).
        monkeypatch.setenv("LD_PRELOAD", preload())
        monkeypatch.setenv("LOKET_FAULT_PATHS", os.path.join(d.data_dir, files))
        monkeypatch.setenv("LOKET_FAULT_CONTROL", disk.path)
        d.start()
        api = Api(d)
        api.admin  # made while the disk is healthy: /metrics needs it
        made.append(api)
        return api, disk

    yield make
    for api in made:
        if api.d.running():
            api.d.stop()
        api.d.close()


def post(api, token, subject, key=None, body=None, timeout=10):
    """POST /api/v1/contacts; (status, headers, document or None), or (None, None, None)
    when the answer was lost (the daemon went away)."""
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    doc = {"channel": "web", "subject": subject}
    if body is not None:
        doc["body"] = body
    try:
        status, hdrs, data = api.d.request("POST", "/api/v1/contacts",
                                           body=json.dumps(doc).encode(), headers=headers,
                                           timeout=timeout)
    except (OSError, http.client.HTTPException):
        return None, None, None
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = None
    return status, hdrs, parsed


class Load:
    """Threads posting contacts with unique subjects until stopped; every answer recorded."""

    def __init__(self, api, token, threads=6, big_threads=0, big_size=0):
        self.api, self.token = api, token
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers = []  # (subject, status, doc)
        self.big_size = big_size
        self.threads = [threading.Thread(target=self.run, args=(i, i < big_threads))
                        for i in range(threads)]

    def run(self, i, big):
        n = 0
        while not self.stop.is_set():
            subject = "load-%d-%d-%s" % (i, n, uuid.uuid4().hex[:6])
            body = "x" * self.big_size if big else None
            n += 1
            status, _, doc = post(self.api, self.token, subject, body=body, timeout=30)
            with self.lock:
                self.answers.append((subject, status, doc))
            if status is None and not self.api.d.running():
                return

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)
            assert not t.is_alive(), "a client thread hangs"

    def by_status(self, status):
        return [(s, d) for s, st, d in self.answers if st == status]


def register_rows(data_dir):
    """{subject: [(id, reference, history_rows)]} from the register, loketd stopped."""
    con = sqlite3.connect(os.path.join(data_dir, "loket.db"))
    try:
        rows = {}
        for cid, ref, subject, hist in con.execute(
                "SELECT c.id, c.reference, c.subject, (SELECT count(*) FROM contact_history h"
                " WHERE h.contact_id = c.id AND h.action = 'created') FROM contacts c"):
            rows.setdefault(subject, []).append((cid, ref, hist))
        assert [r[0] for r in con.execute("PRAGMA integrity_check")] == ["ok"]
        return rows
    finally:
        con.close()


def assert_register_matches(data_dir, answers):
    """Every 201 stored once, whole, under the id and reference it was given; no 503 stored."""
    rows = register_rows(data_dir)
    refs = [r[1] for v in rows.values() for r in v]
    assert len(refs) == len(set(refs)), "a reference is stored twice"
    lost, half, moved, back = [], [], [], []
    for subject, status, doc in answers:
        got = rows.get(subject, [])
        if status == 201:
            if len(got) != 1:
                lost.append((subject, len(got)))
            elif got[0][2] != 1:
                half.append(subject)
            elif (got[0][0], got[0][1]) != (doc["id"], doc["reference"]):
                moved.append((subject, doc["id"], doc["reference"], got[0][:2]))
        elif status == 503 and got:
            back.append(subject)
        else:
            assert len(got) <= 1, "%s stored %d times" % (subject, len(got))
    assert not lost, "contacts answered 201 not stored exactly once: %s" % lost[:10]
    assert not half, "contacts answered 201 stored without their history: %s" % half[:10]
    assert not moved, "contacts answered 201 stored under another id or reference: %s" % \
        moved[:10]
    assert not back, "contacts answered 503 are in the register: %s" % back[:10]
    return rows


def assert_503_with_retry_after(status, headers, doc, *words):
    assert status == 503, (status, doc)
    assert RETRY_AFTER.match(headers.get("Retry-After") or ""), \
        "a 503 without Retry-After: %r" % dict(headers)
    assert headers.get("Content-Type", "").startswith("application/problem+json")
    for w in words:
        assert w in doc["detail"], (w, doc)


def metric(api, name, labels=""):
    r = api.get("/metrics")
    assert r.status == 200, r
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), r.body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def stop_and_check(api, answers):
    assert api.d.stop() == 0, api.d.log()
    return assert_register_matches(api.d.data_dir, answers)


def test_full_disk_answers_503_with_retry_after_and_resumes(faulty):
    api, disk = faulty()
    token = api.token("full-intake", "intake")
    answers = [("before-%d" % i,) + post(api, token, "before-%d" % i)[0::2] for i in range(3)]
    assert [a[1] for a in answers] == [201] * 3, answers

    disk.fail("write ENOSPC 1 0")
    with Load(api, token, threads=4) as load:
        wait_for(lambda: len(load.by_status(503)) >= 8, 10)
    assert disk.fired(), "the shim never failed a write"
    full = load.by_status(503)
    assert len(full) >= 8, "no 503 while the disk is full: %s" % load.answers[:5]
    assert not load.by_status(201), "201 while every write fails: %s" % load.by_status(201)[:3]
    status, headers, doc = post(api, token, "while-full")
    assert_503_with_retry_after(status, headers, doc, "disk is full")
    answers += [a for a in load.answers] + [("while-full", status, doc)]
    assert metric(api, "loket_store_failed_commits_total", '{cause="disk_full"}') >= 1
    assert metric(api, "loket_store_writable") == 0

    disk.heal()
    # Writing resumes by itself: no restart, and the next client is served.
    assert wait_for(lambda: post(api, token, "probe-%s" % uuid.uuid4().hex)[0] == 201
                    or None, 10)
    with Load(api, token, threads=4) as load2:
        wait_for(lambda: len(load2.by_status(201)) >= 20, 20)
    assert len(load2.by_status(201)) >= 20, load2.answers[:5]
    assert set(a[1] for a in load2.answers) <= {201}, load2.answers[:5]
    answers += load2.answers
    assert metric(api, "loket_store_writable") == 1
    stop_and_check(api, answers)


def test_batch_failing_midway_stores_nothing_of_it(faulty):
    # A contact bigger than the writer's page cache (8 MiB) makes SQLite spill pages into the
    # WAL in the middle of a batch. On a nearly full disk that spill fails, and SQLite rolls
    # the whole transaction back while the batch goes on: the writes before it are gone, the
    # ones after it would run (and commit) on their own.
    api, disk = faulty(http={"max_body_size": "12m"})
    token = api.token("midway-intake", "intake")
    answers, lock = [], threading.Lock()

    def send(subject, body=None):
        status, _, doc = post(api, token, subject, body=body, timeout=60)
        with lock:
            answers.append((subject, status, doc))

    for rnd in range(3):
        # A slow fsync holds the writer in one commit while the next batch queues up behind
        # it: a small contact, the big one, two small ones, in that order.
        disk.fail("delay fsync 2000")
        hold = threading.Thread(target=send, args=("hold-%d" % rnd,))
        hold.start()
        time.sleep(0.5)  # the hold's commit has written its frames and sits in its fsync
        disk.fail("write ENOSPC 1 1")  # the next write of the register fails: the spill
        batch = [threading.Thread(target=send, args=("before-%d" % rnd,)),
                 threading.Thread(target=send, args=("big-%d" % rnd, "x" * (9 << 20))),
                 threading.Thread(target=send, args=("after-%d-a" % rnd,)),
                 threading.Thread(target=send, args=("after-%d-b" % rnd,))]
        for t in batch:
            t.start()
            time.sleep(0.25)
        for t in [hold] + batch:
            t.join(60)
        assert disk.fired(), "the shim failed no write"
        disk.heal()
        send("later-%d" % rnd)
    got = {a[0]: a[1] for a in answers}
    assert all(got["later-%d" % r] == 201 for r in range(3)), got
    assert any(got[s] == 503 for s in got if s.startswith("big-")), got
    # A batch is all or nothing: none of it was stored, so none of it may be answered 201.
    for r in range(3):
        if got["big-%d" % r] == 503:
            assert {got["before-%d" % r], got["after-%d-a" % r], got["after-%d-b" % r]} == \
                {503}, got
    stop_and_check(api, answers)


def test_eio_on_fsync_stops_the_daemon_and_nothing_unacknowledged_returns(faulty):
    api, disk = faulty()
    token = api.token("eio-intake", "intake")
    with Load(api, token, threads=6) as load:
        wait_for(lambda: len(load.by_status(201)) >= 20, 10)
        disk.fail("fsync EIO 1 1")
        rc = api.d.wait(timeout=20)
    assert disk.fired() and disk.fired()[0].startswith("fsync EIO"), disk.fired()
    assert rc not in (0, None), "loketd did not stop after a failed fsync (rc=%r)" % rc
    log = api.d.log()
    assert re.search(r" error store .*I/O error in fsync", log), log[-2000:]
    unanswered = [a for a in load.answers if a[1] in (503, None)]
    assert unanswered, "the failed commit's writes were answered as stored"
    failed = load.by_status(503)
    for _, doc in failed:
        assert "nothing of this request was stored" in doc["detail"], doc

    # The failed batch's frames were in the WAL with their commit mark: a restart must not
    # bring them back (the WAL is cut back to the last commit that succeeded).
    disk.heal()
    api.d.proc = None
    api.d.close()
    api.d.start()
    r = api.call("GET", "/healthz")
    assert r.status == 200, r
    stop_and_check(api, load.answers)


def test_idempotency_key_retry_makes_one_contact(faulty):
    api, disk = faulty()
    token = api.token("idem-agent", "agent")
    other = api.token("idem-other", "agent")

    status, headers, first = post(api, token, "idem-first", key="k-1")
    assert status == 201, first
    status, headers, again = post(api, token, "idem-first", key="k-1")
    assert status == 200, again
    assert headers.get("Idempotent-Replayed") == "true"
    assert (again["id"], again["reference"]) == (first["id"], first["reference"])
    assert headers.get("Location") == "/api/v1/contacts/%d" % first["id"]
    # another token's key of the same name is another key
    status, _, theirs = post(api, other, "idem-first", key="k-1")
    assert status == 201 and theirs["id"] != first["id"], theirs

    # a retry after a 503 makes the contact once the disk is back
    disk.fail("write ENOSPC 1 0")
    status, headers, doc = post(api, token, "idem-retry", key="k-2")
    assert_503_with_retry_after(status, headers, doc)
    disk.heal()
    made = wait_for(lambda: (lambda r: r if r[0] == 201 else None)(
        post(api, token, "idem-retry", key="k-2")), 10)
    assert made, "the retry was not stored after the disk came back"
    status, _, replay = post(api, token, "idem-retry", key="k-2")
    assert status == 200 and replay["id"] == made[2]["id"], replay

    assert api.d.stop() == 0, api.d.log()
    rows = register_rows(api.d.data_dir)
    assert len(rows["idem-first"]) == 2, rows["idem-first"]  # one per token
    assert len(rows["idem-retry"]) == 1, rows["idem-retry"]


def test_idempotency_key_with_other_body_is_422(faulty):
    api, _ = faulty()
    token = api.token("idem422-agent", "agent")
    status, _, first = post(api, token, "eerste vraag", key="k-422")
    assert status == 201, first
    r = api.call("POST", "/api/v1/contacts", {"channel": "web", "subject": "andere vraag"},
                 token=token, headers={"Idempotency-Key": "k-422"})
    assert_problem(r, (422,), "Idempotency-Key")
    r = api.call("POST", "/api/v1/contacts", {"channel": "web", "subject": "x"},
                 token=token, headers={"Idempotency-Key": "bad\x01key"})
    assert_problem(r, (400,), "Idempotency-Key")
    assert api.d.stop() == 0, api.d.log()
    rows = register_rows(api.d.data_dir)
    assert "andere vraag" not in rows and len(rows["eerste vraag"]) == 1


def test_healthz_says_register_cannot_commit(faulty):
    api, disk = faulty()
    token = api.token("health-intake", "intake")
    assert api.call("GET", "/healthz").status == 200
    disk.fail("write ENOSPC 1 0")
    status, _, _ = post(api, token, "health-full")
    assert status == 503
    r = api.call("GET", "/healthz")
    assert r.status == 503, r
    assert RETRY_AFTER.match(r.headers.get("Retry-After") or ""), dict(r.headers)
    assert "cannot commit" in r.json["detail"] and "disk is full" in r.json["detail"], r.json
    disk.heal()
    # No client writes: the register finds out by itself that it can commit again.
    assert wait_for(lambda: api.call("GET", "/healthz").status == 200 or None, 10), \
        api.d.log()[-2000:]
    assert api.d.stop() == 0, api.d.log()
    assert "health-full" not in register_rows(api.d.data_dir)


def test_attachments_of_a_contact_out_of_reach_are_not_written(faulty):
    api, _ = faulty()
    agent = api.token("att-agent", "agent")
    outsider = api.token("att-outsider", "backoffice", departments=("sociale_dienst",))
    c = api.create(token=agent, channel="phone", subject="bijlage", department="omgeving")
    pdf = b"%PDF-1.4 out of reach " + uuid.uuid4().hex.encode()
    r = api.call("POST", "/api/v1/contacts/%d/messages" % c["id"],
                 {"body": "zie bijlage", "attachments": [
                     {"name": "a.pdf", "content_type": "application/pdf",
                      "data": base64.b64encode(pdf).decode()}]}, token=outsider)
    assert r.status in (403, 404), r
    folder = os.path.join(api.d.data_dir, "attachments")
    assert not os.path.exists(folder) or not os.listdir(folder), os.listdir(folder)


def test_failed_automatic_checkpoint_is_logged_and_counted(faulty):
    # Only the database file fails: commits (into the WAL) work, checkpoints (WAL into the
    # database file) do not. SQLite's own automatic checkpoint would fail silently.
    api, disk = faulty(files="loket.db")
    token = api.token("ckpt-intake", "intake")
    disk.fail("write ENOSPC 1 0")
    answers = []
    for i in range(1000):
        subject = "ckpt-%d" % i
        status, _, doc = post(api, token, subject, body="tekst " * 4000)
        answers.append((subject, status, doc))
        assert status == 201, (status, doc)
        if "automatic checkpoint failed" in api.d.log():
            break
    api.d.wait_log(r" error store automatic checkpoint failed: database or disk is full")
    assert metric(api, "loket_store_checkpoint_failures_total") >= 1
    assert metric(api, "loket_store_writable") == 1
    assert api.call("GET", "/healthz").status == 200
    disk.heal()
    stop_and_check(api, answers)
