"""Who may do what: every endpoint against every role, departments and organisations as
walls, and the audit trail of reads (docs/api.md, "Roles")."""

import re
import time

import pytest

from api_fixtures import assert_problem, finish_api, make_api, module_api, query, unique_email
from conftest import free_port


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    # chan_email without mailboxes adds its route (the quarantine list) and nothing else; its
    # sender points at a closed port so a queued staff message never leaves the machine.
    yield from module_api(tmp_path_factory, plugins=["chan_email"],
                          plugin_conf={"chan_email": {"smtp_port": str(free_port()),
                                                      "retry_min": "1h"}})


ROLES = ["none", "bad", "agent", "backoffice", "admin", "intake"]


def role_token(api, role):
    return {
        "none": None,
        "bad": "lkt_thisisnotavalidtoken0000000000",
        "agent": api.token("r-agent", "agent"),
        "backoffice": api.token("r-bo-burgerzaken", "backoffice", departments=["burgerzaken"]),
        "admin": api.token("r-admin", "admin"),
        "intake": api.token("r-intake", "intake"),
    }[role]


def _party(api):
    email = unique_email("roles")
    c = api.create(channel="phone", department="burgerzaken", party={"email": email})
    return c, email


def _task(api):
    c = api.in_state("escalated")
    return c["tasks"][0]["id"]


# endpoint -> function(api) giving (method, path, body); the success status; the matrix.
ENDPOINTS = {
    "contact_create": (lambda api: ("POST", "/api/v1/contacts",
                                    {"channel": "web", "department": "burgerzaken"}),
                       201, {"agent": 201, "backoffice": 403, "admin": 201, "intake": 201}),
    "contact_get": (lambda api: ("GET", "/api/v1/contacts/%d" % api.in_state("open")["id"], None),
                    200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "contact_list": (lambda api: ("GET", "/api/v1/contacts?limit=5", None),
                     200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "contact_patch": (lambda api: ("PATCH", "/api/v1/contacts/%d" % api.in_state("open")["id"],
                                   {"priority": "high"}),
                      200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "contact_resolve": (lambda api: ("POST", "/api/v1/contacts/%d/resolve"
                                     % api.in_state("open")["id"], {"answer": "ok"}),
                        200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "contact_escalate": (lambda api: ("POST", "/api/v1/contacts/%d/escalate"
                                      % api.in_state("open")["id"],
                                      {"department": "burgerzaken", "reason": "dossier"}),
                         200, {"agent": 200, "backoffice": 403, "admin": 200, "intake": 403}),
    "contact_close": (lambda api: ("POST", "/api/v1/contacts/%d/close"
                                   % api.in_state("escalated")["id"], {}),
                      200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "contact_reopen": (lambda api: ("POST", "/api/v1/contacts/%d/reopen"
                                    % api.in_state("resolved")["id"], {}),
                       200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "party_get": (lambda api: ("GET", "/api/v1/parties/%d" % _party(api)[0]["party_id"], None),
                  200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "party_lookup": (lambda api: ("GET", query("/api/v1/parties", email=_party(api)[1]), None),
                     200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "party_contacts": (lambda api: ("GET", "/api/v1/parties/%d/contacts"
                                    % _party(api)[0]["party_id"], None),
                       200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "messages_list": (lambda api: ("GET", "/api/v1/contacts/%d/messages"
                                   % api.in_state("open")["id"], None),
                      200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "messages_post": (lambda api: ("POST", "/api/v1/contacts/%d/messages"
                                   % _party(api)[0]["id"], {"body": "Uw vraag is beantwoord."}),
                      202, {"agent": 202, "backoffice": 202, "admin": 202, "intake": 403}),
    "email_quarantine": (lambda api: ("GET", "/api/v1/email/quarantine", None),
                         200, {"agent": 403, "backoffice": 403, "admin": 200, "intake": 403}),
    "task_list": (lambda api: ("GET", "/api/v1/tasks", None),
                  200, {"agent": 200, "backoffice": 200, "admin": 200, "intake": 403}),
    "task_done": (lambda api: ("POST", "/api/v1/tasks/%d/done" % _task(api), {}),
                  200, {"agent": 403, "backoffice": 200, "admin": 200, "intake": 403}),
    "metrics": (lambda api: ("GET", "/metrics", None),
                200, {"agent": 403, "backoffice": 403, "admin": 200, "intake": 403}),
}

CELLS = [(e, r) for e in ENDPOINTS for r in ROLES]


@pytest.mark.parametrize("endpoint,role", CELLS, ids=["%s-%s" % c for c in CELLS])
def test_role_matrix(api, endpoint, role):
    prepare, success, matrix = ENDPOINTS[endpoint]
    method, path, body = prepare(api)
    expected = {"none": 401, "bad": 401}.get(role) or matrix[role]
    r = api.call(method, path, body, token=role_token(api, role))
    assert r.status == expected, "%s as %s: expected %s, got %r" % (endpoint, role, expected, r)
    if r.status >= 400:
        assert_problem(r, r.status)
    elif endpoint == "metrics":
        assert r.content_type == "text/plain", r
    else:
        assert r.status == success
        assert r.content_type == "application/json", r


# departments -------------------------------------------------------------------------------


def test_backoffice_cannot_touch_another_departments_contact(api):
    bo = role_token(api, "backoffice")  # burgerzaken
    mine = api.in_state("escalated", department="burgerzaken")
    other = api.in_state("open", department="omgeving")
    cid = other["id"]
    calls = [
        ("GET", "/api/v1/contacts/%d" % cid, None),
        ("PATCH", "/api/v1/contacts/%d" % cid, {"priority": "low"}),
        ("POST", "/api/v1/contacts/%d/resolve" % cid, {}),
    ]
    for method, path, body in calls:
        assert_problem(api.call(method, path, body, token=bo), 403)
    resolved = api.in_state("resolved", department="omgeving")
    assert_problem(api.call("POST", "/api/v1/contacts/%d/reopen" % resolved["id"], {},
                            token=bo), 403)
    escalated = api.in_state("escalated", department="omgeving")
    assert_problem(api.call("POST", "/api/v1/contacts/%d/close" % escalated["id"], {},
                            token=bo), 403)
    assert_problem(api.call("POST", "/api/v1/tasks/%d/done" % escalated["tasks"][0]["id"], {},
                            token=bo), 403)
    # nothing changed
    for c in (other, resolved, escalated):
        assert api.contact(c["id"]) == c

    listed = api.list_all(token=bo)[0]
    assert mine["id"] in [c["id"] for c in listed], "backoffice misses its own contact"
    assert all(c["department"] == "burgerzaken" for c in listed), \
        sorted({c["department"] for c in listed})
    # docs/api.md: "naming another department in a filter is a 403"
    assert_problem(api.call("GET", "/api/v1/contacts?department=omgeving", token=bo), 403)
    tasks = api.tasks(token=bo)
    assert mine["tasks"][0]["id"] in [t["id"] for t in tasks], tasks
    assert all(t["department"] == "burgerzaken" for t in tasks), tasks
    assert_problem(api.call("GET", "/api/v1/tasks?department=omgeving", token=bo), 403)


def test_backoffice_of_another_organisation_cannot_read_burgerzaken(api):
    sd = api.token("r-bo-sociale-dienst", "backoffice", departments=["sociale_dienst"])
    bz = api.in_state("open", department="burgerzaken")
    assert_problem(api.call("GET", "/api/v1/contacts/%d" % bz["id"], token=sd), 403)
    own = api.in_state("open", department="sociale_dienst")
    assert api.contact(own["id"], token=sd)["id"] == own["id"]
    listed = [c["id"] for c in api.list_all(token=sd)[0]]
    assert own["id"] in listed
    assert bz["id"] not in listed


def test_backoffice_party_history_shows_only_its_departments(api):
    email = unique_email("bo-history")
    bz = api.create(channel="phone", department="burgerzaken", party={"email": email})
    om = api.create(channel="email", department="omgeving", party={"email": email})
    assert bz["party_id"] == om["party_id"]
    bo = role_token(api, "backoffice")
    items = api.list("/api/v1/parties/%d/contacts" % bz["party_id"], token=bo)["items"]
    assert [c["id"] for c in items] == [bz["id"]]
    items = api.list("/api/v1/parties/%d/contacts" % bz["party_id"], token=api.agent)["items"]
    assert [c["id"] for c in items] == [om["id"], bz["id"]]


def test_backoffice_with_two_departments_sees_both(api):
    both = api.token("r-bo-both", "backoffice", departments=["burgerzaken", "omgeving"])
    a = api.in_state("open", department="burgerzaken")
    b = api.in_state("open", department="omgeving")
    c = api.in_state("open", department="sociale_dienst")
    assert api.contact(a["id"], token=both)["id"] == a["id"]
    assert api.contact(b["id"], token=both)["id"] == b["id"]
    assert_problem(api.call("GET", "/api/v1/contacts/%d" % c["id"], token=both), 403)


# organisations and confidential contacts ---------------------------------------------------


@pytest.fixture(scope="module")
def secret(api):
    """A confidential contact of the ocmw (sociale_dienst), created by the admin."""
    email = unique_email("vertrouwelijk")
    c = api.create(token=api.admin, channel="counter", department="sociale_dienst",
                   confidential=True, subject="leefloon", party={"email": email})
    assert c["organisation"] == "ocmw" and c["confidential"] is True
    return c


@pytest.mark.parametrize("who,expected", [
    ("agent-gemeente", 403), ("agent-ocmw", 200), ("agent", 403), ("admin", 200),
    ("bo-sociale-dienst", 403), ("bo-sociale-dienst-ocmw", 200),
])
def test_confidential_contact_only_for_its_organisation(api, secret, who, expected):
    tokens = {
        "agent-gemeente": lambda: api.token("r-agent-gemeente", "agent", organisation="gemeente"),
        "agent-ocmw": lambda: api.token("r-agent-ocmw", "agent", organisation="ocmw"),
        "agent": lambda: role_token(api, "agent"),
        "admin": lambda: role_token(api, "admin"),
        "bo-sociale-dienst": lambda: api.token("r-bo-sociale-dienst", "backoffice",
                                               departments=["sociale_dienst"]),
        "bo-sociale-dienst-ocmw": lambda: api.token("r-bo-sd-ocmw", "backoffice",
                                                    departments=["sociale_dienst"],
                                                    organisation="ocmw"),
    }
    token = tokens[who]()
    r = api.call("GET", "/api/v1/contacts/%d" % secret["id"], token=token)
    if expected == 403:
        assert_problem(r, 403)
    else:
        assert r.status == 200, r
        assert r.json["subject"] == "leefloon"
    listed = [c["id"] for c in api.list_all(token=token, department="sociale_dienst")[0]]
    assert (secret["id"] in listed) == (expected == 200), (who, listed[:20])
    # The party is known only through this confidential contact, so it is confidential
    # too: its history is as closed as the contact (docs/api.md, parties).
    history = api.call("GET", "/api/v1/parties/%d/contacts" % secret["party_id"], token=token)
    if expected == 403:
        assert_problem(history, 403)
    else:
        assert history.status == 200, history
        assert secret["id"] in [c["id"] for c in history.json["items"]]


def test_confidential_gemeente_contact_is_hidden_from_ocmw(api):
    c = api.create(token=api.admin, channel="phone", department="burgerzaken",
                   confidential=True, subject="belastingschuld")
    ocmw = api.token("r-agent-ocmw", "agent", organisation="ocmw")
    gem = api.token("r-agent-gemeente", "agent", organisation="gemeente")
    assert_problem(api.call("GET", "/api/v1/contacts/%d" % c["id"], token=ocmw), 403)
    assert_problem(api.call("PATCH", "/api/v1/contacts/%d" % c["id"], {"priority": "low"},
                            token=ocmw), 403)
    assert api.contact(c["id"], token=gem)["subject"] == "belastingschuld"


def test_revoked_token_is_401(api):
    token = api.token("r-revoked", "agent")
    assert api.call("GET", "/api/v1/contacts?limit=1", token=token).status == 200
    r = api.d.ctl("token", "revoke", "r-revoked")
    assert r.returncode == 0, r.stderr
    assert_problem(api.call("GET", "/api/v1/contacts?limit=1", token=token), 401)


def test_authorization_header_variants(api):
    token = role_token(api, "agent")
    for header in ("Basic " + token, token, "Bearer", "Bearer  " + token + "x", ""):
        r = api.call("GET", "/api/v1/contacts?limit=1", headers={"Authorization": header})
        assert_problem(r, 401)


# audit -------------------------------------------------------------------------------------


def audit_rows(api):
    tables = api.tables()
    assert "audit" in tables, tables
    con = api.db()
    try:
        cur = con.execute("SELECT * FROM audit")
        cols = [d[0] for d in cur.description]
        return cols, [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        con.close()


def test_reads_of_a_party_are_audited_with_the_token(api):
    email = unique_email("audit")
    c = api.create(channel="phone", party={"email": email}, department="burgerzaken")
    reader = api.token("r-audit-reader", "agent")
    assert api.call("GET", "/api/v1/parties/%d/contacts" % c["party_id"], token=reader).status \
        == 200
    assert api.call("GET", "/api/v1/contacts/%d" % c["id"], token=reader).status == 200

    def audited():
        """(columns, rows naming the reader, whether both reads are among them)."""
        cols, rows = audit_rows(api)
        mine = [r for r in rows if any(isinstance(v, str) and "r-audit-reader" in v
                                       for v in r.values())]
        what = [" ".join(str(v) for k, v in r.items() if k not in ("id", "at", "token")).lower()
                for r in mine]
        both = (any("party" in w and re.search(r"\b%d\b" % c["party_id"], w) for w in what) and
                any("contact" in w and re.search(r"\b%d\b" % c["id"], w) for w in what))
        return cols, mine, both

    # audit rows are written after the answer; give the store a moment
    deadline = time.monotonic() + 5
    cols, rows, both = audited()
    while not both and time.monotonic() < deadline:
        time.sleep(0.05)
        cols, rows, both = audited()
    assert "token" in cols and "action" in cols, cols
    assert both, "no audit rows for both the party history and the contact read: %s" % rows
    assert all(r["token"] == "r-audit-reader" for r in rows), rows


def test_metrics_public_when_configured(tmp_path):
    a = make_api(tmp_path / "public", http={"metrics_public": "yes"})
    try:
        r = a.call("GET", "/metrics")
        assert r.status == 200, r
        assert r.content_type == "text/plain", r
        # the contact API stays closed
        assert_problem(a.call("GET", "/api/v1/contacts"), 401)
    finally:
        finish_api(a)
