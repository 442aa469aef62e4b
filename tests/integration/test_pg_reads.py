"""The pgsql driver's reads and blobs: what another node wrote into the shared register reads
back through this node's API in the same shapes the SQLite driver gives (times, scope, pages),
and attachments are kept in the register itself, once per SHA-256, so that nodes share them.

Rows are written here straight into the register, as another node (or an older loketd) would
have written them, so that the reads are checked on rows this daemon never wrote itself."""
import base64
import hashlib
import os
import secrets
import uuid

import pytest

import conftest
from api_fixtures import ORG_CONF, Api, finish_api
from conftest import Loketd
from test_rules_support import DEFAULT_RULES

pytestmark = pytest.mark.pgsql_only("the pgsql driver's register (LOKET_TEST_DRIVER=pgsql)")

# 2026-05-28T20:26:40.123Z and friends, as ms since the epoch.
T0 = 1780000000123


def ts(ms):
    """An SQL timestamptz for ms since the epoch, exactly (the driver's own conversion)."""
    return "('epoch'::timestamptz + %d * interval '1 millisecond')" % ms


def seed_token(db, name, role, departments="[]", organisation=None):
    """A bearer token row as `loketctl token add` stores it (hash: BLAKE2b-256, auth.c)."""
    token = "lkt_" + secrets.token_urlsafe(24)
    digest = hashlib.blake2b(token.encode(), digest_size=32).hexdigest()
    db.execute("INSERT INTO tokens (name, hash, role, departments, organisation, created_at)"
               " VALUES (?, ?, ?, ?::jsonb, ?, " + ts(T0) + ")",
               (name, digest, role, departments, organisation))
    return token


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A daemon on a register that another node filled: two parties, three contacts (one
    confidential of the OCMW), history, a task, messages; tokens seeded before the restart
    that loads them."""
    d = Loketd(tmp_path_factory.mktemp("pgreads"), extra=ORG_CONF)
    d.start()  # makes the register's schema
    db = d.db()
    tokens = {
        "admin": seed_token(db, "n-admin", "admin"),
        "burgerzaken": seed_token(db, "n-bz", "backoffice", '["burgerzaken"]', "gemeente"),
        "ocmw": seed_token(db, "n-ocmw", "agent", "[]", "ocmw"),
    }
    db.execute(
        "INSERT INTO parties (id, kind, name, rrn, confidential, created_at) VALUES"
        " (901, 'person', 'Jan Peeters', '85073003328', false, " + ts(T0) + "),"
        " (902, 'person', 'Vertrouwelijk', NULL, true, " + ts(T0 + 1) + ");"
        "INSERT INTO party_emails VALUES ('jan@example.be', 901), ('a@example.be', 901),"
        " ('v@example.be', 902);"
        "INSERT INTO contacts (id, reference, channel, received_at, updated_at, party_id,"
        " subject, body, department, organisation, status, tags, confidential, meta,"
        " created_by, reply_to) VALUES"
        " (9001, '2026-900001', 'email', " + ts(T0) + ", " + ts(T0 + 333) + ", 901, 'Eerste',"
        " 'tekst', 'burgerzaken', 'gemeente', 'open', '[\"rijbewijs\"]', false, '{\"k\": 1}',"
        " 'node-b', 'jan@example.be'),"
        " (9002, '2026-900002', 'phone', " + ts(T0 + 1000) + ", " + ts(T0 + 1000) + ", 902,"
        " 'Geheim', '', 'sociale_dienst', 'ocmw', 'open', '[]', true, '{}', 'node-b', NULL),"
        " (9003, '2026-900003', 'email', " + ts(T0 + 2000) + ", " + ts(T0 + 2000) + ", 901,"
        " 'Derde', '', 'burgerzaken', 'gemeente', 'closed', '[]', false, '{}', 'node-b', NULL);"
        "INSERT INTO contact_history (contact_id, at, actor, action, from_status, to_status)"
        " VALUES (9001, " + ts(T0) + ", 'node-b', 'created', NULL, 'open');"
        "INSERT INTO tasks (contact_id, department, reason, due_at, created_at, created_by)"
        " VALUES (9001, 'burgerzaken', 'terugbellen', " + ts(T0 + 86400000) + ", " + ts(T0) +
        ", 'rules');"
        "INSERT INTO messages (contact_id, direction, channel, at, actor, sender, recipients,"
        " subject, body, message_id) VALUES (9001, 'in', 'email', " + ts(T0) + ", 'intake',"
        " 'Jan@Example.be', '[\"loket@gemeente.be\"]', 'Eerste', 'tekst', '<m1@example.be>')")
    api = Api(d)
    api.restart()  # the tokens are loaded at start
    api.tokens.update(tokens)
    yield api
    finish_api(api)


def test_a_contact_another_node_wrote_reads_back_with_iso_times_party_history_and_tasks(node):
    c = node.ok("GET", "/api/v1/contacts/9001", token=node.tokens["admin"])
    assert c["reference"] == "2026-900001" and c["status"] == "open", c
    assert c["received_at"] == "2026-05-28T20:26:40.123Z", c
    assert c["updated_at"] == "2026-05-28T20:26:40.456Z", c
    assert c["handled_at"] is None and c["tags"] == ["rijbewijs"] and c["meta"] == {"k": 1}, c
    assert c["party"]["id"] == 901 and c["party"]["name"] == "Jan Peeters", c
    assert [h["action"] for h in c["history"]] == ["created"], c["history"]
    assert len(c["tasks"]) == 1 and c["tasks"][0]["reason"] == "terugbellen", c["tasks"]
    assert c["tasks"][0]["due_at"] == "2026-05-29T20:26:40.123Z", c["tasks"]


def test_messages_and_parties_carry_their_times_as_the_sqlite_driver_writes_them(node):
    msgs = node.ok("GET", "/api/v1/contacts/9001/messages", token=node.tokens["admin"])
    assert [m["at"] for m in msgs["items"]] == ["2026-05-28T20:26:40.123Z"], msgs
    assert msgs["items"][0]["recipients"] == ["loket@gemeente.be"], msgs
    p = node.ok("GET", "/api/v1/parties/901", token=node.tokens["admin"])
    assert p["created_at"] == "2026-05-28T20:26:40.123Z", p
    # Byte order, as SQLite's BINARY collation sorts them.
    assert p["emails"] == ["a@example.be", "jan@example.be"], p
    found = node.ok("GET", "/api/v1/parties?email=jan@example.be", token=node.tokens["admin"])
    assert [x["id"] for x in found["items"]] == [901], found


def test_list_pages_by_id_and_leaves_out_what_the_scope_may_not_see(node):
    admin = node.tokens["admin"]
    first = node.ok("GET", "/api/v1/contacts?limit=2", token=admin)
    assert [x["id"] for x in first["items"]][:2] == [9003, 9002], first
    assert first["next_cursor"] == "9002", first
    rest = node.ok("GET", "/api/v1/contacts?limit=2&cursor=9002", token=admin)
    assert [x["id"] for x in rest["items"]] == [9001] and rest["next_cursor"] is None, rest
    # A department's token sees its department's contacts, never the OCMW's confidential one.
    bz = node.ok("GET", "/api/v1/contacts?limit=50", token=node.tokens["burgerzaken"])
    assert {x["id"] for x in bz["items"]} == {9001, 9003}, bz
    r = node.call("GET", "/api/v1/contacts/9002", token=node.tokens["burgerzaken"])
    assert r.status == 403, r
    # The OCMW's own staff see it, and the party only they may see.
    c = node.ok("GET", "/api/v1/contacts/9002", token=node.tokens["ocmw"])
    assert c["confidential"] is True, c
    assert node.call("GET", "/api/v1/parties/902", token=node.tokens["burgerzaken"]).status \
        == 403
    assert node.ok("GET", "/api/v1/parties/902", token=node.tokens["ocmw"])["id"] == 902


def test_party_contacts_page_newest_first(node):
    page = node.ok("GET", "/api/v1/parties/901/contacts?limit=1", token=node.tokens["admin"])
    assert [x["id"] for x in page["items"]] == [9003] and page["next_cursor"] == "9003", page
    page = node.ok("GET", "/api/v1/parties/901/contacts?limit=1&cursor=9003",
                   token=node.tokens["admin"])
    assert [x["id"] for x in page["items"]] == [9001] and page["next_cursor"] is None, page


def test_an_attachment_is_kept_in_the_register_once_by_its_sha256(node):
    """Nodes share nothing but the database: the bytes go into its blobs table (committed
    before the answer), not into this node's data_dir."""
    pdf = b"%PDF-1.4 pgsql blob " + uuid.uuid4().hex.encode() + bytes(range(256))
    digest = hashlib.sha256(pdf).hexdigest()
    body = {"body": "zie bijlage", "to": "jan@example.be", "attachments": [
        {"name": "a.pdf", "content_type": "application/pdf",
         "data": base64.b64encode(pdf).decode()}]}
    for _ in range(2):
        r = node.call("POST", "/api/v1/contacts/9001/messages", body,
                      token=node.tokens["admin"])
        assert r.status == 202, r
    rows = node.d.db().execute("SELECT sha256, encode(data, 'hex') AS hex FROM blobs"
                               " WHERE sha256 = ?", (digest,)).fetchall()
    assert rows == [(digest, pdf.hex())], rows
    folder = os.path.join(node.d.data_dir, "attachments")
    assert not os.path.exists(folder) or not os.listdir(folder), os.listdir(folder)


def test_loketctl_rules_replay_reads_the_contacts_of_the_shared_register(node):
    """loketctl reads a pgsql register itself (read-only, beside the running daemon): every
    contact received since the date, whichever node wrote it; none from before."""
    r = node.d.ctl("rules", "replay", DEFAULT_RULES, "--since", "2026-05-28")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "replayed 3 contacts" in r.stdout, r.stdout
    r = node.d.ctl("rules", "replay", DEFAULT_RULES, "--since", "2026-05-30")
    assert r.returncode == 0 and "replayed 0 contacts" in r.stdout, r.stdout + r.stderr
