"""Helpers for the contact register API tests (docs/api.md).

A daemon configured with two organisations and three departments, tokens made with
`loketctl token add`, and a small JSON client on top of conftest's Loketd. Each test module
declares its own `api` fixture with module_api().
"""

import datetime
import json
import os
import re
import shutil
import sqlite3
import urllib.parse
import uuid

from conftest import DRIVER, REGISTERS, Loketd

ORG_CONF = """\
[organisation.gemeente]
name = Gemeente Voorbeeld
[organisation.ocmw]
name = OCMW Voorbeeld
[department.burgerzaken]
organisation = gemeente
[department.omgeving]
organisation = gemeente
[department.sociale_dienst]
organisation = ocmw
"""

REFERENCE = re.compile(r"^\d{4}-\d{6}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
TOKEN = re.compile(r"lkt_[A-Za-z0-9_-]+")

# Keys every stored contact carries (docs/api.md, POST /api/v1/contacts answer).
CONTACT_KEYS = ("id", "reference", "channel", "direction", "status", "line", "subject", "body",
                "answer", "product", "department", "organisation", "priority", "tags", "language",
                "confidential", "location", "meta", "party_id", "party", "received_at",
                "handled_at", "updated_at", "created_by")
TASK_KEYS = ("id", "contact_id", "reference", "department", "assignee", "reason", "due_at",
             "status", "created_at", "created_by", "done_at", "done_by")
PARTY_KEYS = ("id", "kind", "name", "emails", "phones", "rrn", "bsn", "confidential",
              "created_at")


def unique(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def unique_email(prefix="burger"):
    return "%s@example.be" % unique(prefix)


def valid_rrn(n):
    """A valid Belgian RRN (born in the 1900s) whose serial part derives from n (0..998)."""
    first9 = "850101%03d" % (n % 998 + 1)
    return first9 + "%02d" % (97 - int(first9) % 97)


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def fmt_time(t):
    """RFC 3339 UTC with milliseconds, as the API writes times."""
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % (t.microsecond // 1000)


def query(path, **params):
    """path?params, leaving out None values; values are URL-encoded (a '+' becomes %2B)."""
    items = [(k, v) for k, v in params.items() if v is not None]
    return path + ("?" + urllib.parse.urlencode(items) if items else "")


class Resp:
    """One HTTP answer: status, headers, raw body and the decoded JSON (or None)."""

    def __init__(self, method, path, status, headers, body):
        self.method, self.path = method, path
        self.status, self.headers, self.body = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def content_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip()

    def __repr__(self):
        text = self.body[:600].decode("utf-8", "replace")
        return "<%s %s -> %d %s %s>" % (self.method, self.path, self.status, self.content_type,
                                        text)


def assert_problem(resp, statuses, *words):
    """Asserts a problem+json answer with one of statuses whose detail names every word.

    Returns the problem document."""
    if isinstance(statuses, int):
        statuses = (statuses,)
    assert resp.status in statuses, "expected %s, got %r" % (statuses, resp)
    assert resp.content_type == "application/problem+json", resp
    doc = resp.json
    assert isinstance(doc, dict), resp
    for key in ("type", "title", "status", "detail"):
        assert key in doc, resp
    assert doc["status"] == resp.status, resp
    assert isinstance(doc["detail"], str) and doc["detail"].strip(), resp
    for w in words:
        assert w.lower() in doc["detail"].lower(), "detail does not name %r: %r" % (w, resp)
    return doc


def assert_status_word(resp, status_word):
    """A 409 whose detail names the contact's current status as a word."""
    doc = assert_problem(resp, 409)
    assert re.search(r"\b%s\b" % status_word, doc["detail"], re.I), \
        "409 detail does not name the current status %r: %r" % (status_word, resp)


class Api:
    """A running loketd with the organisation config, plus a JSON client."""

    def __init__(self, d):
        self.d = d
        self.tokens = {}  # name -> token
        self.names = {}   # token -> name

    # tokens -----------------------------------------------------------------------------

    def token(self, name, role, departments=(), organisation=None):
        """`loketctl token add`; returns the bearer token (cached per name)."""
        if name in self.tokens:
            return self.tokens[name]
        args = ["token", "add", name, role]
        for dep in departments:
            args += ["--department", dep]
        if organisation:
            args += ["--organisation", organisation]
        r = self.d.ctl(*args)
        assert r.returncode == 0, "loketctl %s failed (%d): %s %s" % (
            " ".join(args), r.returncode, r.stdout, r.stderr)
        m = TOKEN.search(r.stdout)
        assert m, "loketctl token add printed no lkt_ token: %r" % r.stdout
        self.tokens[name] = m.group(0)
        self.names[m.group(0)] = name
        return m.group(0)

    @property
    def admin(self):
        return self.token("t-admin", "admin")

    @property
    def agent(self):
        return self.token("t-agent", "agent")

    # requests ---------------------------------------------------------------------------

    def call(self, method, path, body=None, token=None, headers=None, timeout=None):
        """One request; a dict/list body goes as JSON, bytes/str as they are."""
        h = {}
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
            h["Content-Type"] = "application/json"
        elif body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        kw = {} if timeout is None else {"timeout": timeout}
        status, hdrs, data = self.d.request(method, path, body=body, headers=h, **kw)
        return Resp(method, path, status, hdrs, data)

    def get(self, path, token=None):
        return self.call("GET", path, token=token or self.admin)

    def ok(self, method, path, body=None, token=None, status=200):
        """A call that must succeed with a JSON answer; returns the document."""
        r = self.call(method, path, body, token=token or self.admin)
        assert r.status == status, "expected %d, got %r" % (status, r)
        assert r.content_type == "application/json", r
        return r.json

    def create(self, token=None, **fields):
        fields.setdefault("channel", "phone")
        return self.ok("POST", "/api/v1/contacts", fields, token=token or self.agent, status=201)

    def contact(self, cid, token=None):
        return self.ok("GET", "/api/v1/contacts/%s" % cid, token=token)

    # the status each action leads to (docs/api.md, "Status changes")
    ACTION_STATUS = {"resolve": "resolved", "escalate": "escalated", "close": "closed",
                     "reopen": "open"}

    def action(self, cid, verb, body=None, token=None):
        """A status change that must succeed: docs/api.md says it answers 200 with the
        contact in its new status, history and tasks included, as a read would show it."""
        r = self.call("POST", "/api/v1/contacts/%s/%s" % (cid, verb), body or {},
                      token=token or self.admin)
        assert r.status == 200, "expected 200, got %r" % r
        assert r.content_type == "application/json", r
        doc = r.json
        assert isinstance(doc, dict) and doc.get("id") == int(cid), r
        assert doc["status"] == self.ACTION_STATUS[verb], r
        assert isinstance(doc.get("history"), list) and isinstance(doc.get("tasks"), list), r
        assert doc == self.contact(cid, token=token), "the answer differs from a read: %r" % r
        return doc

    def list(self, path="/api/v1/contacts", token=None, **params):
        return self.ok("GET", query(path, **params), token=token)

    def list_all(self, path="/api/v1/contacts", token=None, limit=500, **params):
        """Every item over all pages (following next_cursor); returns (items, pages)."""
        items, pages, cursor = [], 0, None
        while True:
            doc = self.list(path, token=token, limit=limit, cursor=cursor, **params)
            pages += 1
            items += doc["items"]
            cursor = doc["next_cursor"]
            if cursor is None:
                return items, pages
            assert pages < 10000, "paging does not end"

    def tasks(self, token=None, **params):
        return self.ok("GET", query("/api/v1/tasks", **params), token=token)["items"]

    def in_state(self, status, token=None, **fields):
        """A new contact (department burgerzaken unless given) brought into status."""
        fields.setdefault("department", "burgerzaken")
        c = self.create(token=token, **fields)
        if status == "resolved":
            self.action(c["id"], "resolve", {"answer": "beantwoord"})
        elif status in ("escalated", "closed"):
            self.action(c["id"], "escalate", {"department": fields["department"],
                                              "reason": "naar tweede lijn"})
            if status == "closed":
                self.action(c["id"], "close", {"answer": "afgehandeld"})
        else:
            assert status == "open", status
        c = self.contact(c["id"])
        assert c["status"] == status, c
        return c

    # storage ----------------------------------------------------------------------------

    @property
    def db_path(self):
        """The SQLite register file (the sqlite driver's; tests of it are sqlite_only)."""
        return os.path.join(self.d.data_dir, "loket.db")

    def db(self):
        """A read-only look into the register, the daemon may be running: sqlite3 on the
        file, or on pgsql a psql-backed connection to its database (see Loketd.db)."""
        return self.d.db()

    def tables(self):
        """The names of the register's tables, whatever the driver."""
        sql = ("SELECT tablename FROM pg_tables WHERE schemaname NOT IN "
               "('pg_catalog', 'information_schema')" if DRIVER == "pgsql" else
               "SELECT name FROM sqlite_master WHERE type = 'table'")
        con = self.db()
        try:
            return sorted(r[0] for r in con.execute(sql).fetchall())
        finally:
            con.close()

    def integrity_check(self, scratch_dir):
        """The register checked as a restarted daemon would find it: ["ok"] when sound.

        sqlite: PRAGMA integrity_check on a copy of the database files as they are on disk
        now. Copying (db and -wal, not -shm) leaves the daemon's files untouched; opening the
        copy replays the WAL the way a restarted daemon would.
        pgsql: the server has already recovered; amcheck's bt_index_check over every btree
        index of the register (each index agrees with itself and its table); an index that
        does not fails the check with the server's error."""
        if DRIVER == "pgsql":
            cluster, name = REGISTERS.start(), REGISTERS.database_of(self.d)
            cluster.psql_run("CREATE EXTENSION IF NOT EXISTS amcheck", db=name)
            rows = cluster.query(
                "SELECT c.relname AS index, coalesce(bt_index_check(c.oid, true)::text, '') = '' AS ok "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE a.amname = 'btree' AND n.nspname NOT IN ('pg_catalog', "
                "'information_schema', 'pg_toast')", db=name)
            bad = ["index %s is not sound" % r["index"] for r in rows if not r["ok"]]
            return bad or ["ok"]
        os.makedirs(scratch_dir, exist_ok=True)
        dst = os.path.join(scratch_dir, "loket.db")
        for suffix in ("", "-wal"):
            for f in (dst + suffix, dst + "-shm"):
                if os.path.exists(f):
                    os.unlink(f)
            if os.path.exists(self.db_path + suffix):
                shutil.copyfile(self.db_path + suffix, dst + suffix)
        con = sqlite3.connect(dst)
        try:
            return [row[0] for row in con.execute("PRAGMA integrity_check")]
        finally:
            con.close()

    # process ----------------------------------------------------------------------------

    def restart(self):
        """Starts loketd again on the same config and data_dir (after stop or kill)."""
        if self.d.running():
            assert self.d.stop() == 0, self.d.log()
        self.d.proc = None
        self.d.close()
        self.d.start()


def make_api(tmp_dir, http=None, plugins=(), plugin_conf=None):
    """A started loketd with ORG_CONF in tmp_dir (a pathlib.Path, made when missing)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    d = Loketd(tmp_dir, extra=ORG_CONF, http=http, plugins=plugins, plugin_conf=plugin_conf)
    d.start()
    return Api(d)


def finish_api(api):
    """Teardown: SIGTERM, expecting exit 0 when the daemon was still running."""
    was_running = api.d.running()
    rc = api.d.stop()
    api.d.close()
    if was_running:
        assert rc == 0, "loketd exited %r on SIGTERM; log:\n%s" % (rc, api.d.log())


def module_api(tmp_path_factory, name="api", http=None, plugins=(), plugin_conf=None):
    """Body of a module-scoped `api` fixture: one daemon shared by a module's tests, which
    keep apart by unique parties and subjects. Use as `yield from module_api(...)`."""
    a = make_api(tmp_path_factory.mktemp(name), http=http, plugins=plugins,
                 plugin_conf=plugin_conf)
    yield a
    finish_api(a)
