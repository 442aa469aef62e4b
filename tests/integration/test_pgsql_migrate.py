"""Moving an install from SQLite to PostgreSQL with `loketctl migrate` (docs/migrate.md), as
an operator does it: a register filled by a real loketd on SQLite (contacts, parties and a
merge, tasks, reminders, the outbox, audit, tokens, an attachment), the daemon stopped, the
register copied into an empty PostgreSQL database, and loketd started on the copy.

- Everything is there on PostgreSQL as the API showed it on SQLite, old tokens work, and a
  new contact gets a reference of its own (the year's counter went past the copied ones).
- Each table's count and checksum is printed, source and target alike.
- A copy into a register that already holds rows is refused (exit 1, a sentence naming why)
  and writes nothing; bad arguments exit 2; the conninfo's password is never printed.
"""
import base64
import os
import re
import sqlite3
import subprocess

import pytest

from api_fixtures import Api
from conftest import LOKETCTL, REGISTERS, SLOW, Loketd, wait_for
from test_rules_support import DEFAULT_RULES, example_units, rules_section

pytestmark = pytest.mark.pgsql_only("a copy into PostgreSQL needs the pgsql driver's cluster "
                                    "(LOKET_TEST_DRIVER=pgsql)")

TABLES = ("parties", "party_emails", "party_phones", "contacts", "contact_keys", "tasks",
          "contact_history", "messages", "timers", "outbox", "audit", "tokens", "events",
          "counts", "refseq", "blobs", "users")
ATTACHMENT = b"%PDF-1.4\nuittreksel bevolkingsregister\n" + bytes(range(256))
UNITS = rules_section(DEFAULT_RULES) + example_units()
SQLITE = "[storage]\ndriver = sqlite\n"
STAFF_PASSWORD = "een lang wachtwoord"


def conninfo_of(d):
    m = re.findall(r"^conninfo = (.*)$", d.config_text, re.M)
    assert m, d.config_text
    return m[-1]


def table_lines(stdout):
    """{table: (source rows, target rows, checksum, verdict)} from migrate's table."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s+(\d+)\s+([0-9a-f]{16})\s+(ok|MISMATCH)$", line)
        if m:
            out[m.group(1)] = (int(m.group(2)), int(m.group(3)), m.group(4), m.group(5))
    return out


def fill_sqlite_register(tmp_path):
    """A loketd on SQLite with every kind of row; returns (daemon, api, what it showed)."""
    (tmp_path / "old").mkdir()
    old = Loketd(tmp_path / "old", extra=UNITS + SQLITE)
    old.start()
    old.wait_log(r"rules loaded .*contact_rules=[1-9]")
    api = Api(old)
    # A phone call: the first-line reminder rule makes a timer.
    phone = api.create(channel="phone", subject="Terugbellen", body="Vraag over afval",
                       party={"name": "Jan Peeters", "phone": "+32470123456"})
    # A mail about a permit: routed to a department with a task, acknowledged (outbox).
    mail = api.create(channel="email", subject="Vraag over mijn omgevingsvergunning",
                      body="Hoe ver staat mijn aanvraag?",
                      party={"name": "An Peeters", "email": "an.peeters@example.be"})
    assert mail["status"] == "escalated", mail
    # The same citizen under a second address, then found to be one person: a merge.
    twin = api.create(channel="web", subject="Nog een vraag", body="Over parkeren",
                      party={"name": "An Peeters", "email": "an.p@example.be"},
                      department="burgerzaken")
    merged = api.ok("POST", "/api/v1/parties/%d/merge" % mail["party_id"],
                    {"party": twin["party_id"]})
    assert merged["merged"]["contacts"], merged
    api.action(phone["id"], "resolve", {"answer": "teruggebeld"})
    # A staff user: carried with its password hash, so it signs in on the copy.
    r = subprocess.run([LOKETCTL, "-c", old.conf_path, "user", "add", "balie1", "agent"],
                       input=STAFF_PASSWORD + "\n", capture_output=True, text=True,
                       timeout=30 * SLOW)
    assert r.returncode == 0, r.stderr
    # A staff answer with an attachment: a blob and an outbox row.
    r = api.call("POST", "/api/v1/contacts/%d/messages" % mail["id"],
                 {"body": "In bijlage het uittreksel.", "to": "an.peeters@example.be",
                  "via": "email",
                  "attachments": [{"name": "uittreksel.pdf", "content_type": "application/pdf",
                                   "data": base64.b64encode(ATTACHMENT).decode()}]},
                 token=api.admin)
    assert r.status == 202, r
    # Without a mail plugin the outbox fails its messages: wait until it has, so that what
    # the API shows now is what the register holds when the daemon stops.
    assert wait_for(lambda: all(m["status"] != "queued" for m in api.get(
        "/api/v1/contacts/%d/messages" % mail["id"]).json["items"]), 10 * SLOW)
    ids = (phone["id"], mail["id"], twin["id"])
    shown = {
        "contacts": {cid: api.contact(cid) for cid in ids},
        "messages": api.get("/api/v1/contacts/%d/messages" % mail["id"]).json["items"],
        "party": api.get("/api/v1/parties/%d" % merged["id"]).json,
        "merged_away": twin["party_id"] if merged["id"] != twin["party_id"] else mail["party_id"],
        "tasks": api.tasks(),
    }
    assert old.stop() == 0, old.log()
    old.close()
    return old, api, shown


def test_migrate_copies_a_sqlite_register_into_postgresql_and_loketd_runs_on_it(tmp_path):
    old, old_api, shown = fill_sqlite_register(tmp_path)
    db_path = os.path.join(old.data_dir, "loket.db")
    con = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        source = {t: con.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                  for t in TABLES if t != "blobs"}
    finally:
        con.close()
    for t in ("contacts", "tasks", "timers", "outbox", "audit", "tokens", "messages",
              "events", "contact_history", "users"):
        assert source[t] > 0, "the SQLite register holds no %s rows to copy: %r" % (t, source)
    assert os.listdir(os.path.join(old.data_dir, "attachments")), "no attachment stored"

    (tmp_path / "new").mkdir()
    new = Loketd(tmp_path / "new", extra=UNITS)
    REGISTERS.database_of(new)
    cluster = REGISTERS.start()
    # The password in the conninfo itself, as an operator may write it: never printed.
    conninfo = conninfo_of(new) + " password=%s" % cluster.password
    r = new.ctl("migrate", "--from", "sqlite:" + db_path, "--to", "pgsql:" + conninfo,
                timeout=120)
    assert r.returncode == 0, "migrate failed (%d):\n%s\n%s" % (r.returncode, r.stdout, r.stderr)
    assert cluster.password not in r.stdout + r.stderr
    tables = table_lines(r.stdout)
    assert sorted(tables) == sorted(TABLES), r.stdout
    for t, (src, dst, _, verdict) in tables.items():
        assert verdict == "ok" and src == dst, r.stdout
        if t in source:
            assert src == source[t], (t, src, source[t], r.stdout)
    assert tables["blobs"][0] >= 1, r.stdout
    assert re.search(r"copied and verified \d+ rows in 17 tables", r.stdout), r.stdout
    # Not a terminal here: a plain progress line per table, no bar drawn with \r.
    assert "\r" not in r.stderr and "copying contacts: %d rows" % source["contacts"] in r.stderr

    new.start()
    api = Api(new)
    # The tokens came along: the old admin's token works on the new register.
    api.tokens, api.names = old_api.tokens, old_api.names
    # So did the staff users: one signs in with the password it had.
    r = api.call("POST", "/api/v1/session", {"username": "balie1", "password": STAFF_PASSWORD})
    assert r.status == 200 and r.json["user"]["role"] == "agent", r
    for cid, before in shown["contacts"].items():
        after = api.contact(cid)
        assert after == before, "contact %d differs after the copy:\n%r\n%r" % (
            cid, before, after)
    assert api.get("/api/v1/contacts/%d/messages" % min(
        c["id"] for c in shown["contacts"].values() if c["channel"] == "email")).json[
        "items"] == shown["messages"]
    out = [m for m in shown["messages"] if m["attachments"]]
    assert out and out[0]["attachments"][0]["sha256"], shown["messages"]
    assert api.get("/api/v1/parties/%d" % shown["party"]["id"]).json == shown["party"]
    assert api.get("/api/v1/parties/%d" % shown["merged_away"]).status == 404
    assert api.tasks() == shown["tasks"]
    # The attachment's bytes are in the register's blobs table, under their SHA-256.
    db = new.db()
    try:
        size = db.execute("SELECT length(data) FROM blobs WHERE sha256 = ?",
                          (out[0]["attachments"][0]["sha256"],)).fetchone()
    finally:
        db.close()
    assert size is not None and int(size[0]) == len(ATTACHMENT), size

    # New rows get new ids and references: the copy set the counters past its own.
    refs = {c["reference"] for c in shown["contacts"].values()}
    fresh = api.create(channel="phone", subject="Na de verhuizing", body="Eerste nieuwe vraag")
    assert fresh["reference"] not in refs, (fresh["reference"], refs)
    assert fresh["id"] > max(shown["contacts"]), fresh
    assert fresh["reference"] > max(r for r in refs if r[:4] == fresh["reference"][:4]), refs
    # The search index is not copied: the target made it as the rows were loaded.
    permit = [c["id"] for c in shown["contacts"].values() if "omgevingsvergunning" in c["subject"]]
    found = api.get("/api/v1/search?q=Omgevingsvergunning").json
    assert [c["id"] for c in found["contacts"]] == permit, found
    found = api.get("/api/v1/search?q=an+peet").json
    assert [p["id"] for p in found["parties"]] == [shown["party"]["id"]], found
    assert new.stop() == 0, new.log()


def test_migrate_refuses_a_target_that_holds_rows(tmp_path):
    old, _, _ = fill_sqlite_register(tmp_path)
    db_path = os.path.join(old.data_dir, "loket.db")
    (tmp_path / "new").mkdir()
    new = Loketd(tmp_path / "new", extra=UNITS)
    new.start()
    Api(new).create(channel="phone", subject="Al in gebruik", body="Een eerste contact")
    assert new.stop() == 0, new.log()
    db = new.db()
    try:
        before = [db.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                  for t in ("contacts", "tokens", "audit")]
    finally:
        db.close()

    r = new.ctl("migrate", "--from", "sqlite:" + db_path, "--to", "pgsql:" + conninfo_of(new))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert re.search(r"not empty \(.*contacts.*\).*nothing was written", r.stderr), r.stderr
    db = new.db()
    try:
        assert [db.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                for t in ("contacts", "tokens", "audit")] == before
    finally:
        db.close()


def test_migrate_a_second_time_into_the_copy_is_refused(tmp_path):
    old, _, _ = fill_sqlite_register(tmp_path)
    db_path = os.path.join(old.data_dir, "loket.db")
    (tmp_path / "new").mkdir()
    new = Loketd(tmp_path / "new", extra=UNITS)
    REGISTERS.database_of(new)
    args = ("migrate", "--from", "sqlite:" + db_path, "--to", "pgsql:" + conninfo_of(new))
    first = new.ctl(*args, timeout=120)
    assert first.returncode == 0, (first.stdout, first.stderr)
    again = new.ctl(*args, timeout=120)
    assert again.returncode == 1, (again.returncode, again.stdout, again.stderr)
    assert "the target register is not empty" in again.stderr, again.stderr
    assert "a copy goes only into an empty register" in again.stderr, again.stderr


@pytest.mark.parametrize("args, says", [
    ((), "both --from and --to are required"),
    (("--from", "sqlite:/nonexistent/loket.db"), "both --from and --to are required"),
    (("--from", "/var/lib/loket/loket.db", "--to", "pgsql:dbname=x"), "--from must be DRIVER:WHERE"),
    (("--from", "sqlite:/nonexistent/loket.db", "--to", "pgsql:dbname=x"),
     "no readable register file at /nonexistent/loket.db"),
    (("--from", "sqlite:DB", "--to", "sqlite:/tmp/other.db"), "the same driver"),
    (("--from", "sqlite:DB", "--to", "nosuchdriver:x"), "storage driver nosuchdriver"),
    (("--from", "sqlite:DB", "--to", "pgsql:dbname=x", "--verbose"), "unknown option"),
])
def test_migrate_bad_arguments_exit_2_with_a_sentence(tmp_path, args, says):
    d = Loketd(tmp_path, extra=SQLITE)
    db = os.path.join(d.data_dir, "loket.db")
    os.makedirs(d.data_dir, exist_ok=True)
    sqlite3.connect(db).close()
    r = d.ctl("migrate", *[a.replace("DB", db) for a in args])
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert says in r.stderr, r.stderr


def test_migrate_never_prints_a_conninfo_that_libpq_cannot_parse(tmp_path):
    old, _, _ = fill_sqlite_register(tmp_path)
    secret = "Hunter2-s3cret"
    r = old.ctl("migrate", "--from", "sqlite:" + os.path.join(old.data_dir, "loket.db"),
                "--to", "pgsql:" + secret)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert secret not in r.stdout + r.stderr, r.stderr
    assert "conninfo is not valid" in r.stderr, r.stderr
