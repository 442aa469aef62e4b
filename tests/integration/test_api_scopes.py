"""Scopes without holes: a party known only through confidential contacts, tasks after their
contact moved, departments and organisations on PATCH, escalate and create, tokens, HEAD,
and the audit of denied reads and task lists (docs/api.md, "Roles")."""

import time

import pytest

from api_fixtures import assert_problem, module_api, unique_email, valid_rrn


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory)


def tok(api, who):
    return {
        "agent": lambda: api.token("sc-agent", "agent"),
        "agent-gemeente": lambda: api.token("sc-agent-gemeente", "agent",
                                            organisation="gemeente"),
        "agent-ocmw": lambda: api.token("sc-agent-ocmw", "agent", organisation="ocmw"),
        "bo-burgerzaken": lambda: api.token("sc-bo-bz", "backoffice",
                                            departments=["burgerzaken"],
                                            organisation="gemeente"),
        "bo-omgeving": lambda: api.token("sc-bo-om", "backoffice", departments=["omgeving"],
                                         organisation="gemeente"),
        "bo-sociale-dienst": lambda: api.token("sc-bo-sd", "backoffice",
                                               departments=["sociale_dienst"],
                                               organisation="ocmw"),
        "admin": lambda: api.admin,
    }[who]()


def audit_rows(api, token_name, action_part, expect=(), timeout=5):
    """The audit rows of a token whose action names action_part, once expect are among them
    (audit rows are written in batches after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        con = api.db()
        try:
            rows = con.execute("SELECT action, object FROM audit WHERE token = ? ORDER BY id",
                               (token_name,)).fetchall()
        finally:
            con.close()
        hits = [r for r in rows if action_part in r[0]]
        if (hits and all(e in hits for e in expect)) or time.monotonic() > deadline:
            return hits
        time.sleep(0.05)


# parties ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hidden(api):
    """A person known only through a confidential contact of the OCMW."""
    email, rrn = unique_email("verborgen"), valid_rrn(611)
    c = api.create(token=api.admin, channel="counter", department="sociale_dienst",
                   confidential=True, subject="schuldhulp",
                   party={"name": "Karel Verborgen", "email": email, "rrn": rrn})
    return {"contact": c, "party": c["party_id"], "email": email, "rrn": rrn}


@pytest.mark.parametrize("who,sees", [
    ("agent", False), ("agent-gemeente", False), ("bo-burgerzaken", False),
    ("agent-ocmw", True), ("bo-sociale-dienst", True), ("admin", True),
])
def test_party_of_confidential_contacts_hidden_from_other_scopes(api, hidden, who, sees):
    token = tok(api, who)
    r = api.call("GET", "/api/v1/parties/%d" % hidden["party"], token=token)
    found = api.list("/api/v1/parties", token=token, email=hidden["email"])["items"]
    by_rrn = api.list("/api/v1/parties", token=token, rrn=hidden["rrn"])["items"]
    if sees:
        assert r.status == 200, r
        assert r.json["name"] == "Karel Verborgen" and r.json["confidential"] is True, r.json
        assert [p["id"] for p in found] == [hidden["party"]]
        assert [p["id"] for p in by_rrn] == [hidden["party"]]
    else:
        assert_problem(r, 403, "confidential")
        assert b"Verborgen" not in r.body and hidden["email"].encode() not in r.body
        assert found == [] and by_rrn == []


def test_party_is_confidential_only_while_all_its_contacts_are(api):
    email = unique_email("half")
    c = api.create(token=api.admin, channel="counter", department="sociale_dienst",
                   confidential=True, party={"email": email})
    agent = tok(api, "agent")
    assert_problem(api.call("GET", "/api/v1/parties/%d" % c["party_id"], token=agent), 403)
    api.create(channel="phone", department="burgerzaken", party={"email": email})
    p = api.ok("GET", "/api/v1/parties/%d" % c["party_id"], token=agent)
    assert p["confidential"] is False and p["emails"] == [email], p
    # the confidential contact itself stays hidden in the history
    items = api.list("/api/v1/parties/%d/contacts" % c["party_id"], token=agent)["items"]
    assert c["id"] not in [x["id"] for x in items]


def test_denied_read_is_audited(api, hidden):
    token = tok(api, "bo-burgerzaken")
    cid = hidden["contact"]["id"]
    assert_problem(api.call("GET", "/api/v1/contacts/%d" % cid, token=token), 403)
    assert_problem(api.call("GET", "/api/v1/parties/%d" % hidden["party"], token=token), 403)
    want = [("contact.read.denied", "contact:%d" % cid),
            ("party.read.denied", "party:%d" % hidden["party"])]
    rows = audit_rows(api, "sc-bo-bz", "denied", expect=want)
    assert ("contact.read.denied", "contact:%d" % cid) in rows, rows
    assert ("party.read.denied", "party:%d" % hidden["party"]) in rows, rows


def test_task_list_is_audited(api):
    token = api.token("sc-bo-audit", "backoffice", departments=["burgerzaken"])
    assert api.call("GET", "/api/v1/tasks", token=token).status == 200
    assert audit_rows(api, "sc-bo-audit", "task.list") == [("task.list", "tasks")]


# tasks follow their contact --------------------------------------------------------------


def test_task_follows_its_contact_after_a_move(api):
    c = api.in_state("escalated", department="burgerzaken")
    task = c["tasks"][0]["id"]
    moved = api.ok("PATCH", "/api/v1/contacts/%d" % c["id"], {"department": "sociale_dienst"})
    assert moved["organisation"] == "ocmw"
    bz, sd = tok(api, "bo-burgerzaken"), tok(api, "bo-sociale-dienst")
    assert task not in [t["id"] for t in api.tasks(token=bz)]
    assert task not in [t["id"] for t in api.tasks(token=bz, department="burgerzaken")]
    assert_problem(api.call("POST", "/api/v1/tasks/%d/done" % task, {}, token=bz), 403)
    assert api.contact(c["id"])["status"] == "escalated"
    mine = [t for t in api.tasks(token=sd) if t["id"] == task]
    assert [t["department"] for t in mine] == ["sociale_dienst"], mine
    done = api.ok("POST", "/api/v1/tasks/%d/done" % task, {}, token=sd)
    assert done["status"] == "done"
    assert api.contact(c["id"])["status"] == "closed"


# departments and organisations -----------------------------------------------------------


def test_backoffice_cannot_take_a_contact_out_of_every_department(api):
    c = api.in_state("open", department="burgerzaken")
    r = api.call("PATCH", "/api/v1/contacts/%d" % c["id"], {"department": None},
                 token=tok(api, "bo-burgerzaken"))
    assert_problem(r, 403, "department")
    assert api.contact(c["id"])["department"] == "burgerzaken"
    # the first line may take it back
    assert api.ok("PATCH", "/api/v1/contacts/%d" % c["id"], {"department": None},
                  token=tok(api, "agent"))["department"] is None


def test_confidential_contact_cannot_cross_the_organisation_wall(api):
    ocmw = tok(api, "agent-ocmw")
    c = api.create(token=ocmw, channel="counter", department="sociale_dienst",
                   confidential=True, subject="budgetbeheer")
    r = api.call("PATCH", "/api/v1/contacts/%d" % c["id"], {"department": "burgerzaken"},
                 token=ocmw)
    assert_problem(r, 403, "confidential", "ocmw", "gemeente")
    r = api.call("POST", "/api/v1/contacts/%d/escalate" % c["id"],
                 {"department": "burgerzaken", "reason": "x"}, token=ocmw)
    assert_problem(r, 403, "confidential")
    got = api.contact(c["id"])
    assert (got["department"], got["organisation"], got["status"]) == \
        ("sociale_dienst", "ocmw", "open")
    # within its organisation, and an ordinary contact across it, still move
    open_one = api.create(channel="phone", department="sociale_dienst")
    assert api.ok("PATCH", "/api/v1/contacts/%d" % open_one["id"],
                  {"department": "burgerzaken"}, token=ocmw)["organisation"] == "gemeente"


def test_create_refuses_a_department_of_another_organisation(api):
    before = api.list(token=api.admin, limit=1)["items"]
    r = api.call("POST", "/api/v1/contacts",
                 {"channel": "web", "department": "burgerzaken", "organisation": "ocmw"},
                 token=api.agent)
    assert_problem(r, 422, "department", "gemeente", "ocmw")
    assert api.list(token=api.admin, limit=1)["items"] == before
    ok = api.create(channel="web", department="sociale_dienst", organisation="ocmw")
    assert ok["organisation"] == "ocmw"


@pytest.mark.parametrize("role", ["agent", "admin", "intake"])
def test_department_on_a_token_other_than_backoffice_is_refused(api, role):
    r = api.d.ctl("token", "add", "sc-dep-" + role, role, "--department", "burgerzaken")
    assert r.returncode != 0, r.stdout
    assert "backoffice" in (r.stderr + r.stdout), (r.stdout, r.stderr)
    listed = api.d.ctl("token", "list")
    assert "sc-dep-" + role not in listed.stdout


# HEAD ------------------------------------------------------------------------------------


def read_answer(f):
    """One HTTP answer from a file object: (status line, headers dict)."""
    status = f.readline().decode("latin-1").strip()
    headers = {}
    while True:
        line = f.readline().decode("latin-1")
        if line in ("\r\n", "\n", ""):
            return status, headers
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()


@pytest.mark.parametrize("path,auth", [("/healthz", False), ("/api/v1/contacts?limit=1", True),
                                       ("/api/v1/contacts/987654321", True),
                                       ("/api/v1/contacts", False)])
def test_head_has_no_body(api, path, auth):
    """HEAD then GET on one kept-alive connection: the GET's answer starts right after the
    HEAD's headers, so a proxy reusing the connection hands nobody a stray body."""
    header = "Authorization: Bearer %s\r\n" % api.agent if auth else ""
    req = "%s %s HTTP/1.1\r\nHost: x\r\n" + header + "\r\n"
    s = api.d.connect()
    try:
        s.sendall((req % ("HEAD", path) + req % ("GET", path)).encode())
        f = s.makefile("rb")
        status, headers = read_answer(f)
        assert status.startswith("HTTP/1.1 "), status
        head_code = status.split()[1]
        status, get_headers = read_answer(f)
        assert status.startswith("HTTP/1.1 ") and status.split()[1] == head_code, status
        body = f.read(int(get_headers["content-length"]))
        assert headers.get("content-length") == get_headers["content-length"], (headers,
                                                                                get_headers)
        assert headers.get("content-type") == get_headers.get("content-type")
        assert len(body) == int(get_headers["content-length"])
    finally:
        s.close()
