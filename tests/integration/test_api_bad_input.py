"""Bad input gets a clear problem+json answer and loses nothing already accepted: after every
bad request the contacts stored before are read back unchanged, and no contact appears."""

import json
import socket
import urllib.parse

import pytest

from api_fixtures import Resp, assert_problem, module_api, unique_email

MAX_BODY = 64 * 1024

SEED = [
    {"channel": "phone", "subject": "Afspraak identiteitskaart", "body": "Wanneer?",
     "product": "identiteitskaart", "department": "burgerzaken", "priority": "normal",
     "tags": ["afspraak"], "language": "nl", "location": "Balie 3",
     "party": {"name": "Jan Peeters", "email": "jan.bad@example.be", "phone": "0470 12 34 56",
               "rrn": "85.07.30-033.28"},
     "meta": {"queue": "burgerzaken", "wait_seconds": "42"}},
    {"channel": "email", "subject": "Premie zonnepanelen", "department": "omgeving"},
    {"channel": "counter", "subject": "Leefloon", "department": "sociale_dienst"},
]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory, "bad", http={"max_body_size": "64k"})


@pytest.fixture(scope="module")
def seeded(api):
    """Contacts stored before the bad input, as GET shows them; the first stays open."""
    ids = [api.create(**c)["id"] for c in SEED]
    escalated = api.create(channel="web", department="omgeving", subject="Bouwaanvraag")
    api.action(escalated["id"], "escalate", {"department": "omgeving", "reason": "advies"})
    ids.append(escalated["id"])
    return {cid: api.contact(cid) for cid in ids}


def assert_intact(api, seeded):
    for cid, before in seeded.items():
        assert api.contact(cid) == before, "contact %d changed after bad input" % cid
    newest = api.list(limit=1)["items"][0]["id"]
    assert newest == max(seeded), "a contact was stored from bad input: %d" % newest


def nested(depth):
    return '{"a":' * depth + '"x"' + "}" * depth


def raw_post(api, path, headers, body):
    """POST with a raw socket: the answer is read even if the server stops reading the body."""
    head = "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % path
    head += "".join("%s: %s\r\n" % kv for kv in headers.items())
    head += "Content-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection((api.d.host, api.d.port), timeout=10) as s:
        s.sendall(head.encode())
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip()] = v.strip()

    class H(dict):
        def get(self, k, default=None):
            for key, v in self.items():
                if key.lower() == k.lower():
                    return v
            return default
    return Resp("POST", path, int(lines[0].split()[1]), H(hdrs), rest)


C = "/api/v1/contacts"
S = "/api/v1/contacts/{open}"          # the open seed contact
ESC = "/api/v1/contacts/{escalated}"   # the escalated seed contact
# docs/api.md: another content type is a 415, a body that is not JSON a 400, JSON that is not
# an object or a field of the wrong kind a 422 naming the field; a query parameter that is not
# understood a 400 naming the parameter; an id in the path that is no stored object a 404.
SYNTAX = (400,)
INVALID = (422,)
QUERY = (400,)
NOT_FOUND = (404,)

# (id, method, path, body, extra headers, statuses, words the detail must name)
CASES = [
    # the body is not a JSON object
    ("malformed-json", "POST", C, b'{"channel": "phone",', {}, SYNTAX, []),
    ("trailing-garbage", "POST", C, b'{"channel": "phone"} and more', {}, SYNTAX, []),
    ("empty-body", "POST", C, b"", {}, SYNTAX, ["empty"]),
    ("json-array", "POST", C, b'[{"channel": "phone"}]', {}, INVALID, []),
    ("json-string", "POST", C, b'"phone"', {}, INVALID, []),
    ("json-null", "POST", C, b"null", {}, INVALID, []),
    ("deep-nesting", "POST", C, b"[" * 10000 + b"]" * 10000, {}, SYNTAX, ["depth"]),
    ("deep-nesting-in-meta", "POST", C,
     ('{"channel": "phone", "meta": %s}' % nested(10000)).encode(), {}, SYNTAX, ["depth"]),
    ("invalid-utf8", "POST", C, b'{"channel": "phone", "subject": "caf\xe9 \xff\xfe"}', {},
     SYNTAX, []),
    ("nul-in-subject", "POST", C, b'{"channel": "phone", "subject": "a\\u0000b"}', {},
     INVALID, []),
    ("xml-body", "POST", C, b"<contact channel='phone'/>", {"Content-Type": "application/xml"},
     (415,), []),
    # wrong types
    ("channel-number", "POST", C, {"channel": 3}, {}, INVALID, ["channel"]),
    ("channel-null", "POST", C, {"channel": None}, {}, INVALID, ["channel"]),
    ("subject-number", "POST", C, {"channel": "phone", "subject": 42}, {}, INVALID, ["subject"]),
    ("tags-string", "POST", C, {"channel": "phone", "tags": "afspraak"}, {}, INVALID, ["tags"]),
    ("tags-numbers", "POST", C, {"channel": "phone", "tags": [1, 2]}, {}, INVALID, ["tags"]),
    ("confidential-yes", "POST", C, {"channel": "phone", "confidential": "yes"}, {}, INVALID,
     ["confidential"]),
    ("party-string", "POST", C, {"channel": "phone", "party": "Jan Peeters"}, {}, INVALID,
     ["party"]),
    ("meta-array", "POST", C, {"channel": "phone", "meta": ["queue"]}, {}, INVALID, ["meta"]),
    ("party-email-number", "POST", C, {"channel": "phone", "party": {"email": 5}}, {}, INVALID,
     ["party.email"]),
    # values outside the domain
    ("channel-unknown", "POST", C, {"channel": "fax"}, {}, INVALID, ["channel"]),
    ("channel-missing", "POST", C, {"subject": "geen kanaal"}, {}, INVALID, ["channel"]),
    ("department-unknown", "POST", C, {"channel": "phone", "department": "financien"}, {},
     INVALID, ["department"]),
    ("organisation-unknown", "POST", C, {"channel": "phone", "organisation": "provincie"}, {},
     INVALID, ["organisation"]),
    ("priority-whatever", "POST", C, {"channel": "phone", "priority": "whatever"}, {}, (422,),
     ["priority"]),
    # The language picks a reply template file: a path is no language.
    ("language-path", "POST", C, {"channel": "email", "language": "../../x"}, {}, (422,),
     ["language", "nl-BE"]),
    ("language-digits", "POST", C, {"channel": "phone", "language": "n1"}, {}, (422,),
     ["language"]),
    ("direction-sideways", "POST", C, {"channel": "phone", "direction": "sideways"}, {},
     INVALID, ["direction"]),
    ("rrn-invalid", "POST", C, {"channel": "phone", "party": {"rrn": "12345678901"}}, {},
     (422,), ["party.rrn"]),
    ("bsn-invalid", "POST", C, {"channel": "phone", "party": {"bsn": "111252333"}}, {},
     (422,), ["party.bsn"]),
    ("phone-invalid", "POST", C, {"channel": "phone", "party": {"phone": "0470"}}, {},
     (422,), ["party.phone"]),
    ("phone-letters", "POST", C, {"channel": "phone", "party": {"phone": "bel me"}}, {},
     (422,), ["party.phone"]),
    ("email-invalid", "POST", C, {"channel": "phone", "party": {"email": "jan@@example.be"}},
     {}, (422,), ["party.email"]),
    # sizes (docs/api.md names no limit; the register keeps subjects to 1000 bytes)
    ("subject-overlong", "POST", C, {"channel": "phone", "subject": "x" * 1001}, {}, INVALID,
     ["subject"]),
    ("product-overlong", "POST", C, {"channel": "phone", "product": "p" * 5000}, {}, INVALID,
     ["product"]),
    ("tags-too-many", "POST", C, {"channel": "phone", "tags": ["t%d" % i for i in range(1000)]},
     {}, INVALID, ["tags"]),
    ("party-name-number", "POST", C, {"channel": "phone", "party": {"name": 7}}, {}, INVALID,
     ["party.name"]),
    # PATCH
    ("patch-subject-overlong", "PATCH", S, {"subject": "x" * 1001}, {}, INVALID, ["subject"]),
    ("patch-unknown-field", "PATCH", S, {"colour": "blue"}, {}, (422,), ["colour"]),
    ("patch-unknown-beside-known", "PATCH", S, {"subject": "nieuw", "colour": "blue"}, {},
     (422,), ["colour"]),
    ("patch-status", "PATCH", S, {"status": "closed"}, {}, (422,), ["status"]),
    ("patch-channel", "PATCH", S, {"channel": "email"}, {}, (422,), ["channel"]),
    ("patch-reference", "PATCH", S, {"reference": "2000-000001"}, {}, (422,), ["reference"]),
    ("patch-priority-whatever", "PATCH", S, {"priority": "whatever"}, {}, (422,), ["priority"]),
    ("patch-department-unknown", "PATCH", S, {"department": "financien"}, {}, INVALID,
     ["department"]),
    ("patch-tags-string", "PATCH", S, {"tags": "dringend"}, {}, INVALID, ["tags"]),
    ("patch-subject-nul", "PATCH", S, b'{"subject": "a\\u0000b"}', {}, INVALID, []),
    ("patch-malformed", "PATCH", S, b'{"subject": ', {}, SYNTAX, []),
    ("patch-array", "PATCH", S, b'["subject"]', {}, INVALID, []),
    # status changes
    ("escalate-no-department", "POST", S + "/escalate", {"reason": "x"}, {}, INVALID,
     ["department"]),
    ("escalate-unknown-department", "POST", S + "/escalate", {"department": "financien"}, {},
     INVALID, ["department"]),
    ("escalate-bad-due", "POST", S + "/escalate", {"department": "omgeving", "due": "morgen"},
     {}, INVALID, ["due"]),
    ("resolve-answer-number", "POST", S + "/resolve", {"answer": 5}, {}, INVALID, ["answer"]),
    ("resolve-malformed", "POST", S + "/resolve", b"{", {}, SYNTAX, []),
    ("close-malformed", "POST", ESC + "/close", b"{,}", {}, SYNTAX, []),
    # query strings
    ("limit-0", "GET", C + "?limit=0", None, {}, QUERY, ["limit"]),
    ("limit-abc", "GET", C + "?limit=abc", None, {}, QUERY, ["limit"]),
    ("limit-100000", "GET", C + "?limit=100000", None, {}, QUERY, ["limit"]),
    ("limit-negative", "GET", C + "?limit=-1", None, {}, QUERY, ["limit"]),
    ("cursor-bad", "GET", C + "?cursor=zzz", None, {}, QUERY, ["cursor"]),
    ("since-word", "GET", C + "?since=yesterday", None, {}, QUERY, ["since"]),
    ("since-bad-date", "GET", C + "?since=2026-13-45", None, {}, QUERY, ["since"]),
    ("until-bad", "GET", C + "?until=2026-11-01T25:00:00Z", None, {}, QUERY, ["until"]),
    ("status-unknown", "GET", C + "?status=pending", None, {}, QUERY, ["status"]),
    ("line-3", "GET", C + "?line=3", None, {}, QUERY, ["line"]),
    ("channel-filter-unknown", "GET", C + "?channel=fax", None, {}, QUERY, ["channel"]),
    ("party-filter-abc", "GET", C + "?party=abc", None, {}, QUERY, ["party"]),
    ("party-filter-overflow", "GET", C + "?party=99999999999999999999", None, {}, QUERY,
     ["party"]),
    ("party-lookup-nothing", "GET", "/api/v1/parties", None, {}, QUERY, ["email"]),
    ("party-contacts-limit", "GET", "/api/v1/parties/1/contacts?limit=0", None, {}, QUERY,
     ["limit"]),
    ("tasks-status-unknown", "GET", "/api/v1/tasks?status=maybe", None, {}, QUERY,
     ["status"]),
    # ids in the path
    ("id-abc", "GET", C + "/abc", None, {}, NOT_FOUND, []),
    ("id-negative", "GET", C + "/-1", None, {}, NOT_FOUND, []),
    ("id-huge", "GET", C + "/99999999999999999999999999", None, {}, NOT_FOUND, []),
    ("id-sql", "GET", C + "/1%20OR%201=1", None, {}, NOT_FOUND, []),
    ("patch-id-abc", "PATCH", C + "/abc", {"subject": "x"}, {}, NOT_FOUND, []),
    ("resolve-id-abc", "POST", C + "/abc/resolve", {}, {}, NOT_FOUND, []),
    ("party-id-abc", "GET", "/api/v1/parties/abc", None, {}, NOT_FOUND, []),
    ("task-id-abc", "POST", "/api/v1/tasks/abc/done", {}, {}, NOT_FOUND, []),
    ("task-id-missing", "POST", "/api/v1/tasks/987654/done", {}, {}, (404,), []),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_4xx_and_loses_nothing(api, seeded, case):
    _, method, path, body, headers, statuses, words = case
    ids = list(seeded)
    path = path.format(open=ids[0], escalated=ids[-1])
    r = api.call(method, path, body, token=api.admin, headers=headers)
    assert_problem(r, statuses, *words)
    assert_intact(api, seeded)
    assert api.d.running()


def test_body_over_max_body_size_is_413(api, seeded):
    body = json.dumps({"channel": "phone", "subject": "x" * (2 * MAX_BODY)}).encode()
    r = raw_post(api, C, {"Authorization": "Bearer " + api.admin,
                          "Content-Type": "application/json"}, body)
    assert_problem(r, 413)
    assert_intact(api, seeded)


def test_chunked_body_over_max_body_size_is_413(api, seeded):
    chunk = b"x" * 8192
    with socket.create_connection((api.d.host, api.d.port), timeout=10) as s:
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                   "Connection: close\r\n\r\n" % (C, api.admin)).encode())
        s.sendall(b"%x\r\n" % 27 + b'{"channel":"phone","body":"' + b"\r\n")
        try:
            for _ in range(2 * MAX_BODY // len(chunk)):
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            s.sendall(b"2\r\n\"}\r\n0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while True:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            data += part
    assert data.startswith(b"HTTP/1.1 413"), data[:300]
    assert_intact(api, seeded)


def test_body_just_under_the_limit_is_accepted(api, seeded):
    body = {"channel": "email", "subject": "groot", "body": "y" * (MAX_BODY - 1024)}
    c = api.create(**body)
    assert api.contact(c["id"])["body"] == body["body"]
    seeded[c["id"]] = api.contact(c["id"])


def test_subject_of_1000_bytes_is_accepted(api, seeded):
    c = api.create(channel="phone", subject="s" * 1000)
    got = api.contact(c["id"])
    assert got["subject"] == "s" * 1000
    seeded[c["id"]] = got


def test_cr_lf_and_unicode_in_subject_are_stored_verbatim(api, seeded):
    subject = "Vraag\r\nover\rafval\n\tophaling — één été 🚮 \\ \" '"
    c = api.create(channel="web", subject=subject, body="regel 1\r\nregel 2\n")
    assert c["subject"] == subject
    got = api.contact(c["id"])
    assert got["subject"] == subject
    assert got["body"] == "regel 1\r\nregel 2\n"
    seeded[c["id"]] = got


INJECTIONS = ["'; DROP TABLE contacts; --", '" OR 1=1 --', "1; DELETE FROM parties",
              "Robert'); DROP TABLE audit;--", "%' OR '%'='"]


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_like_text_is_stored_verbatim(api, seeded, text):
    fields = {"channel": "email", "subject": text, "body": text, "product": text,
              "location": text, "tags": [text], "meta": {"note": text},
              "party": {"name": text, "email": unique_email("sql")}}
    c = api.create(**fields)
    got = api.contact(c["id"])
    for key in ("subject", "body", "product", "location", "tags", "meta"):
        assert got[key] == fields[key], (key, got[key])
    assert got["party"]["name"] == text
    api.ok("PATCH", "/api/v1/contacts/%d" % c["id"], {"subject": text + text, "answer": text})
    got = api.contact(c["id"])
    assert got["subject"] == text + text and got["answer"] == text
    seeded[c["id"]] = got
    # as a department filter it finds nothing (a department that left the config still has
    # its contacts, so any name is a fair filter); elsewhere it is a bad parameter
    r = api.call("GET", "/api/v1/contacts?department=%s" % urllib.parse.quote(text),
                 token=api.admin)
    assert r.status == 200 and r.json["items"] == [], r
    for key in ("channel", "status", "since", "cursor"):
        r = api.call("GET", "/api/v1/contacts?%s=%s" % (key, urllib.parse.quote(text)),
                     token=api.admin)
        assert_problem(r, QUERY, key)
    r = api.call("GET", "/api/v1/parties?email=%s" % urllib.parse.quote(text), token=api.admin)
    assert_problem(r, 422, "email")
    assert_intact(api, seeded)
    tables = set(api.tables())
    assert {"contacts", "parties", "audit"} <= tables, tables


def test_daemon_still_serves_after_everything(api, seeded):
    assert api.d.request("GET", "/healthz")[0] == 200
    assert_intact(api, seeded)
    assert "error" not in [l.split()[1] for l in api.d.log().splitlines()
                           if len(l.split()) > 1 and l.split()[0].endswith("Z")], api.d.log()


@pytest.mark.parametrize("value", ["2026-01-01T00:00:00+1:2", "2026-01-01T00:00:00+01:2",
                                   "2026-01-01T00:00:00+", "2026-01-01T00:00:00.",
                                   "2026-02-30"])
def test_time_parse_rejects_truncated_offset(api, seeded, value):
    """A time cut short in its offset is a 400 naming the parameter, and loketd lives on
    (it used to read past the string's end and abort under ASan)."""
    for key in ("since", "until"):
        r = api.call("GET", "/api/v1/contacts?%s=%s" % (key, urllib.parse.quote(value, safe="")),
                     token=api.admin)
        assert_problem(r, 400, key)
        assert api.d.running(), api.d.log()[-2000:]
    ids = list(seeded)
    r = api.call("POST", "/api/v1/contacts/%d/escalate" % ids[0],
                 {"department": "omgeving", "due": value}, token=api.admin)
    assert_problem(r, INVALID, "due")
    assert api.d.request("GET", "/healthz")[0] == 200
    assert_intact(api, seeded)


def test_time_with_offset_still_filters(api, seeded):
    """The strict parser still reads what RFC 3339 allows: an offset and a fraction."""
    r = api.call("GET", "/api/v1/contacts?since=%s&limit=500" %
                 urllib.parse.quote("2000-01-01T01:00:00.5+01:00", safe=""), token=api.admin)
    assert r.status == 200, r
    assert set(seeded) <= {c["id"] for c in r.json["items"]}
    r = api.call("GET", "/api/v1/contacts?until=2000-01-01", token=api.admin)
    assert r.status == 200 and r.json["items"] == [], r


def test_problem_detail_cut_on_character_boundary(api, seeded):
    """A value quoted into a detail and cut at a byte count inside a character still gives a
    readable problem+json body (it used to be empty: jansson refuses half a character)."""
    value = "a" * 39 + "é"  # the detail quotes 40 bytes: the é's first byte only
    r = api.call("GET", "/api/v1/contacts?status=%s" % urllib.parse.quote(value),
                 token=api.admin)
    doc = assert_problem(r, 400, "status", "a" * 39)
    r = api.call("POST", "/api/v1/contacts/%d/escalate" % list(seeded)[0],
                 {"department": "d" * 63 + "ë"}, token=api.admin)
    doc = assert_problem(r, INVALID, "department", "d" * 63)
    assert "\ufffd" not in doc["detail"], doc
    # Bytes that are not UTF-8 at all show as U+FFFD, never as an empty body.
    r = api.call("GET", "/api/v1/contacts?status=%FFpending%C3", token=api.admin)
    doc = assert_problem(r, 400, "status", "pending")
    assert "\ufffd" in doc["detail"], doc
    assert_intact(api, seeded)
