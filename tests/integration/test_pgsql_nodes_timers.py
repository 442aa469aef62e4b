"""Several nodes, one register (issue 14): due timers and outbox rows are claimed by one
node for a lease ([storage] lease) and taken over when that node dies.

- A task deadline due while two nodes run fires on exactly one of them: one "overdue"
  history row, one task.due event, once.
- A node killed with kill -9 while it holds claims: the other node fires them once the
  lease runs out (lease = 2s), and nothing of them is stored twice.
- A mail in the outbox while two nodes run (each queueing mails) goes out once.
"""
import os
import re
import signal
import subprocess
import threading
import time

import pytest

import pg_fixture
from conftest import REGISTERS, SLOW, wait_for
from email_support import CITIZEN, email_conf, messages
from mail_fixtures import mailserver  # noqa: F401
from test_rules_support import Client, always_open_units, history_of, rules_section

pytestmark = pytest.mark.pgsql_only("nodes sharing one register (LOKET_TEST_DRIVER=pgsql)")

LEASE = 2.0  # seconds: [storage] lease of both nodes

DEADLINE_RULES = """
loket.on("contact", function(c)
  c:escalate{ to = "burgerzaken", reason = "advies", within = "1m" }
end)
loket.on("overdue", function(c) c:tag("te-laat") end)
"""


def storage(node, conninfo=None):
    """A [storage] section of the test's own: this node's name and a short lease, and for a
    second node the first node's register."""
    text = "[storage]\nnode = %s\nlease = %ds\n" % (node, LEASE)
    if conninfo:
        text += "driver = pgsql\nconninfo = %s\n" % conninfo
    return text


def conninfo_of(d):
    return re.findall(r"^conninfo = (.*)$", d.config_text, re.M)[-1]


def two_nodes(loketd, extra, **kw):
    """Node a, then node b on a's register; the tokens are made on a before b starts (a
    node reads them when it starts). (a, b, client of a, client of b)."""
    a = loketd(extra=extra + storage("node-a"), **kw)
    ca = Client(a)
    ca.admin, ca.agent  # noqa: B018 (makes the tokens)
    b = loketd(extra=extra + storage("node-b", conninfo_of(a)), **kw)
    cb = Client(b)
    cb._tokens = dict(ca._tokens)
    return a, b, ca, cb


def timer_nodes(loketd, tmp_path):
    rules = tmp_path / "deadline-rules"
    rules.mkdir()
    (rules / "10-deadline.lua").write_text(DEADLINE_RULES)
    extra = rules_section(str(rules), catalogue=None) + always_open_units(tmp_path)
    return two_nodes(loketd, extra, test_clock=True)


def scalar(d, sql):
    db = d.db()
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def overdue_rows(client, cid):
    return history_of(client.contact(cid), action="overdue")


def fired_on(d):
    """Contact ids whose deadline timer this node fired (its log: ids only)."""
    return sorted(int(i) for i in re.findall(r"task overdue contact=(\d+)", d.log()))


def move_both(a, b, seconds):
    """Both nodes' clocks at once, so that both find the same timers due."""
    threads = [threading.Thread(target=d.move_clock, args=(seconds,)) for d in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_a_due_deadline_fires_on_exactly_one_of_two_nodes(loketd, tmp_path):
    a, b, ca, cb = timer_nodes(loketd, tmp_path)
    # Written on both nodes: each knows its own timers, and finds the other's when it reads.
    ids = [(ca if i % 2 else cb).create(channel="phone", subject="Advies %d" % i)["id"]
           for i in range(12)]
    move_both(a, b, 61)

    def all_late():
        return all(overdue_rows(ca, cid) for cid in ids)

    assert wait_for(all_late, 15 * SLOW), (a.log()[-2000:], b.log()[-2000:])
    time.sleep(LEASE + 1 * SLOW)  # a second firing, a claim running out: here by now
    for cid in ids:
        doc = ca.contact(cid)
        rows = history_of(doc, action="overdue")
        assert [(h["actor"], h["detail"]) for h in rows] == \
            [("loketd", "a task passed its due time")], doc["history"]
        assert doc["tags"].count("te-laat") == 1, doc
    # Each timer fired on one node, once: not on both.
    fired = sorted(fired_on(a) + fired_on(b))
    assert fired == sorted(ids), (fired, ids)
    assert scalar(a, "SELECT count(*) FROM events WHERE kind = 'task.due'") == len(ids)
    assert scalar(a, "SELECT count(*) FROM events WHERE kind = 'timer.fired'") == len(ids)
    # Done, and the claims ended with them.
    assert scalar(a, "SELECT count(*) FROM timers WHERE status <> 'done'"
                     " OR claimed_by IS NOT NULL OR claim_until IS NOT NULL") == 0


class ContactLock:
    """A psql session holding contacts FOR UPDATE: a node's writes on them wait until
    release() (its claims on their timers are already committed)."""

    def __init__(self, d, ids):
        cluster = REGISTERS.start()
        self.db = REGISTERS.database_of(d)
        self.cluster = cluster
        env = dict(os.environ, PGAPPNAME="loket-test-lock")
        for k in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGSSLMODE"):
            env.pop(k, None)
        self.proc = subprocess.Popen(
            [cluster.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", cluster.sockdir,
             "-p", str(cluster.port), "-U", pg_fixture.SUPERUSER, "-d", self.db],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True, env=env)
        self.proc.stdin.write("BEGIN;\nSELECT id FROM contacts WHERE id IN (%s) FOR UPDATE;\n"
                              % ", ".join(str(int(i)) for i in ids))
        self.proc.stdin.flush()
        held = wait_for(lambda: cluster.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'loket-test-lock'"
            " AND state = 'idle in transaction'", db=self.db) == "1", 10 * SLOW)
        assert held, "the psql session did not take the lock"

    def release(self):
        if self.proc is None:
            return
        self.proc.stdin.write("ROLLBACK;\n\\q\n")
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc = None


def test_claims_of_a_node_killed_with_kill_9_fire_on_the_other_node_within_the_lease(
        loketd, tmp_path):
    a, b, ca, cb = timer_nodes(loketd, tmp_path)
    ids = [ca.create(channel="phone", subject="Advies %d" % i)["id"] for i in range(4)]
    lock = ContactLock(a, ids)
    try:
        # Node a finds the deadlines due and claims them; their actions wait on the lock.
        a.move_clock(61)
        claimed = wait_for(lambda: scalar(
            a, "SELECT count(*) FROM timers WHERE claimed_by = 'node-a'"
               " AND status = 'pending' AND claim_until IS NOT NULL") == len(ids), 10 * SLOW)
        assert claimed, a.log()[-2000:]
        t_claimed = time.monotonic()
        assert fired_on(a) == sorted(ids), a.log()[-2000:]
        a.send_signal(signal.SIGKILL)
        assert a.wait() == -signal.SIGKILL
        b.move_clock(61)
        lock.release()
        # The claims are live for a while yet: node b leaves them to node a (dead or not).
        time.sleep(0.5)
        if time.monotonic() - t_claimed < LEASE - 0.5:
            assert fired_on(b) == [], b.log()[-2000:]
            assert not any(overdue_rows(cb, cid) for cid in ids)

        def all_late():
            return all(overdue_rows(cb, cid) for cid in ids)

        assert wait_for(all_late, 15 * SLOW), b.log()[-3000:]
        took = time.monotonic() - t_claimed
        # Within the lease of the claim (and what b takes to write them).
        assert took <= LEASE + 2 * SLOW, "taken over %.1f s after the claim" % took
    finally:
        lock.release()
    time.sleep(LEASE + 1 * SLOW)
    assert fired_on(b) == sorted(ids), b.log()[-2000:]
    for cid in ids:
        doc = cb.contact(cid)
        assert len(history_of(doc, action="overdue")) == 1, doc["history"]
        assert doc["tags"].count("te-laat") == 1, doc
    assert scalar(b, "SELECT count(*) FROM events WHERE kind = 'task.due'") == len(ids)
    assert scalar(b, "SELECT count(*) FROM timers WHERE status <> 'done'"
                     " OR claimed_by IS NOT NULL") == 0


def test_a_timer_fired_on_two_nodes_across_a_lease_hand_over_acts_once(loketd, tmp_path):
    """Node a is slow, not dead: its claims run out while its actions wait, node b fires the
    same timers, and both actions reach the register. The first stored wins; the second
    stores nothing (no second history row, no second task.due)."""
    a, b, ca, cb = timer_nodes(loketd, tmp_path)
    ids = [ca.create(channel="phone", subject="Advies %d" % i)["id"] for i in range(3)]
    lock = ContactLock(a, ids)
    try:
        a.move_clock(61)
        assert wait_for(lambda: fired_on(a) == sorted(ids), 10 * SLOW), a.log()[-2000:]
        b.move_clock(61)
        # After a's lease, b takes the timers over (a's actions still wait on the lock).
        assert wait_for(lambda: fired_on(b) == sorted(ids), (LEASE + 10) * SLOW), \
            b.log()[-2000:]
    finally:
        lock.release()

    def all_late():
        return all(overdue_rows(ca, cid) for cid in ids)

    assert wait_for(all_late, 15 * SLOW), (a.log()[-2000:], b.log()[-2000:])
    time.sleep(1 * SLOW)
    for cid in ids:
        doc = ca.contact(cid)
        assert len(history_of(doc, action="overdue")) == 1, doc["history"]
        assert doc["tags"].count("te-laat") == 1, doc
    assert scalar(a, "SELECT count(*) FROM events WHERE kind = 'task.due'") == len(ids)
    assert scalar(a, "SELECT count(*) FROM events WHERE kind = 'timer.fired'") == len(ids)
    assert scalar(a, "SELECT count(*) FROM timers WHERE status <> 'done'") == 0
    # Nothing was lost on the way: no write of either node failed.
    assert "not stored" not in a.log() + b.log()


def test_an_outbox_mail_due_while_two_nodes_run_is_sent_once(loketd, mailserver):  # noqa: F811
    for user in mailserver.users:
        mailserver.clear(user)
    kw = {"plugins": ["chan_email"], "plugin_conf": {"chan_email": email_conf(mailserver)}}
    extra = ("[organisation.gemeente]\nname = Gemeente Voorbeeld\n"
             "[department.burgerzaken]\norganisation = gemeente\n")
    a, b, ca, cb = two_nodes(loketd, extra, **kw)
    subjects = ["Uw vraag %d" % i for i in range(10)]
    cids = []
    # Queued on both nodes in turn: each write makes its node read the outbox, the
    # other node's rows (some still being sent) included.
    for i, subject in enumerate(subjects):
        client = ca if i % 2 else cb
        c = client.create(channel="phone", subject="Vraag %d" % i)
        status, doc, _, raw = client.call(
            "POST", "/api/v1/contacts/%d/messages" % c["id"],
            {"body": "Beste,\n\nHier is uw antwoord.\n", "subject": subject, "to": CITIZEN,
             "via": "email"}, token=client.agent)
        assert status == 202, raw
        cids.append(c["id"])

    def all_sent():
        return all(any(m["direction"] == "out" and m["status"] == "sent"
                       for m in messages(ca, cid)) for cid in cids)

    assert wait_for(all_sent, 30 * SLOW, interval=0.3), (a.log()[-2000:], b.log()[-2000:])
    mailserver.wait_messages(CITIZEN, "INBOX", len(subjects), timeout=30 * SLOW)
    time.sleep(LEASE + 2 * SLOW)  # a second sending would be here by now
    got = [raw for _, raw, _ in mailserver.messages(CITIZEN)]
    seen = [s for s in subjects for raw in got
            if re.search(rb"^Subject: .*\b" + re.escape(s.encode()) + rb"\b", raw,
                         re.M | re.I)]
    assert sorted(seen) == sorted(subjects), (len(got), seen)
    assert len(got) == len(subjects)
    for cid in cids:
        outs = [m for m in messages(ca, cid) if m["direction"] == "out"]
        assert [m["status"] for m in outs] == ["sent"], outs
    assert scalar(a, "SELECT count(*) FROM outbox WHERE status <> 'sent' OR attempts <> 1"
                     " OR claimed_by IS NOT NULL") == 0
    assert "outcome not stored" not in a.log() + b.log()
