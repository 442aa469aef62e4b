"""The contact register over HTTP as a first-line agent uses it: create, read, list with
every filter, page, patch, move through the statuses, hand over to the second line and
finish the task (docs/api.md)."""

import datetime
import time

import pytest

from api_fixtures import (CONTACT_KEYS, REFERENCE, RFC3339, TASK_KEYS, assert_problem,
                          assert_status_word, fmt_time, module_api, parse_time, unique_email)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory)


FULL = {
    "channel": "phone", "subject": "Afspraak identiteitskaart",
    "body": "Wanneer kan ik langskomen?",
    "product": "identiteitskaart", "department": "burgerzaken", "organisation": "gemeente",
    "direction": "in", "priority": "high", "tags": ["afspraak"], "language": "nl",
    "confidential": False, "location": "Balie 3",
    "party": {"name": "Jan Peeters", "email": "Jan.Roundtrip@Example.be"},
    "meta": {"queue": "burgerzaken", "wait_seconds": "42"},
}


def transitions(contact):
    return [(h["from"], h["to"]) for h in contact["history"]
            if h.get("from") is not None and h.get("from") != h.get("to")]


# create and read ---------------------------------------------------------------------------


def test_create_answers_the_stored_contact(api):
    r = api.call("POST", "/api/v1/contacts", FULL, token=api.agent)
    assert r.status == 201, r
    assert r.content_type == "application/json", r
    assert "no-store" in (r.headers.get("Cache-Control") or ""), r.headers
    c = r.json
    for key in CONTACT_KEYS:
        assert key in c, (key, c)
    assert isinstance(c["id"], int) and c["id"] > 0
    assert REFERENCE.match(c["reference"]), c["reference"]
    assert c["reference"][:4] == str(datetime.datetime.now(datetime.timezone.utc).year)
    assert (c["status"], c["line"]) == ("open", 1)
    for key in ("channel", "subject", "body", "product", "department", "organisation",
                "direction", "priority", "tags", "language", "confidential", "location", "meta"):
        assert c[key] == FULL[key], (key, c[key])
    assert c["answer"] is None
    assert c["handled_at"] is None
    assert isinstance(c["party_id"], int)
    assert c["party"]["id"] == c["party_id"]
    assert c["party"]["name"] == "Jan Peeters"
    assert RFC3339.match(c["received_at"]), c["received_at"]
    assert RFC3339.match(c["updated_at"]), c["updated_at"]
    assert c["created_by"] == "t-agent"


def test_get_returns_what_create_answered_plus_history_and_tasks(api):
    c = api.create(**FULL)
    r = api.call("GET", "/api/v1/contacts/%d" % c["id"], token=api.agent)
    assert r.status == 200, r
    assert "no-store" in (r.headers.get("Cache-Control") or ""), r.headers
    got = r.json
    for key in CONTACT_KEYS:
        assert got[key] == c[key], (key, got[key], c[key])
    assert isinstance(got["history"], list)
    assert got["tasks"] == []


def test_minimal_contact_gets_the_defaults(api):
    c = api.create(channel="web")
    assert c["priority"] == "normal"
    assert c["organisation"] == "gemeente"  # the first configured organisation
    assert c["party_id"] is None
    assert c["status"] == "open" and c["line"] == 1


def test_organisation_defaults_to_the_departments(api):
    c = api.create(channel="counter", department="sociale_dienst")
    assert c["organisation"] == "ocmw"
    c = api.create(channel="counter", department="omgeving")
    assert c["organisation"] == "gemeente"


def test_unknown_contact_is_404(api):
    assert_problem(api.call("GET", "/api/v1/contacts/987654321", token=api.agent), 404)


def test_references_are_unique_and_increasing(api):
    year = str(datetime.datetime.now(datetime.timezone.utc).year)
    refs = [api.create(channel="email", subject="ref %d" % i)["reference"] for i in range(50)]
    assert all(REFERENCE.match(r) and r.startswith(year + "-") for r in refs), refs
    assert len(set(refs)) == 50
    numbers = [int(r[5:]) for r in refs]
    assert numbers == sorted(numbers) and all(b > a for a, b in zip(numbers, numbers[1:])), refs


# list and filters ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(api):
    """Four contacts of one party on four channels, departments and statuses."""
    email = unique_email("filters")
    p = {"email": email}
    c1 = api.create(channel="phone", department="burgerzaken", party=p)   # open, line 1
    c2 = api.create(channel="email", department="omgeving", party=p)      # resolved
    api.action(c2["id"], "resolve", {"answer": "zie website"})
    c3 = api.create(channel="web", department="burgerzaken", party=p)     # escalated, line 2
    api.action(c3["id"], "escalate", {"department": "burgerzaken", "reason": "dossier"})
    c4 = api.create(channel="counter", department="sociale_dienst", party=p)  # open
    assert c1["party_id"] == c2["party_id"] == c3["party_id"] == c4["party_id"]
    return {"party": c1["party_id"], "c1": c1["id"], "c2": c2["id"], "c3": c3["id"],
            "c4": c4["id"]}


FILTERS = [
    ({}, ["c4", "c3", "c2", "c1"]),
    ({"status": "open"}, ["c4", "c1"]),
    ({"status": "resolved"}, ["c2"]),
    ({"status": "escalated"}, ["c3"]),
    ({"status": "closed"}, []),
    ({"line": "1"}, ["c4", "c2", "c1"]),
    ({"line": "2"}, ["c3"]),
    ({"channel": "phone"}, ["c1"]),
    ({"channel": "email"}, ["c2"]),
    ({"channel": "web"}, ["c3"]),
    ({"channel": "counter"}, ["c4"]),
    ({"department": "burgerzaken"}, ["c3", "c1"]),
    ({"department": "omgeving"}, ["c2"]),
    ({"department": "sociale_dienst"}, ["c4"]),
    ({"status": "open", "channel": "counter"}, ["c4"]),
    ({"line": "1", "department": "burgerzaken"}, ["c1"]),
]


@pytest.mark.parametrize("params,expected", FILTERS,
                         ids=["-".join("%s=%s" % kv for kv in p.items()) or "party-only"
                              for p, _ in FILTERS])
def test_list_filter_within_one_party(api, mixed, params, expected):
    doc = api.list(token=api.agent, party=mixed["party"], **params)
    assert set(doc) >= {"items", "next_cursor"}, doc
    assert [c["id"] for c in doc["items"]] == [mixed[k] for k in expected], doc["items"]
    assert doc["next_cursor"] is None


@pytest.mark.parametrize("key,value", [("status", "open"), ("status", "escalated"),
                                       ("line", 2), ("channel", "email"),
                                       ("department", "omgeving")])
def test_list_filter_over_everything(api, mixed, key, value):
    items = api.list(token=api.agent, limit=500, **{key: value})["items"]
    assert items, "no %s=%s contact listed" % (key, value)
    assert all(c[key] == value for c in items), [(c["id"], c[key]) for c in items]


def test_list_answers_no_store(api, mixed):
    r = api.call("GET", "/api/v1/contacts?party=%d" % mixed["party"], token=api.agent)
    assert r.status == 200, r
    assert "no-store" in (r.headers.get("Cache-Control") or ""), r.headers


def test_list_since_until(api):
    p = {"email": unique_email("times")}
    early = [api.create(channel="phone", party=p)["id"] for _ in range(3)]
    time.sleep(0.3)
    late = [api.create(channel="phone", party=p)["id"] for _ in range(3)]
    t_early = parse_time(api.contact(early[-1])["received_at"])
    t_late = parse_time(api.contact(late[0])["received_at"])
    assert t_late - t_early >= datetime.timedelta(milliseconds=200), (t_early, t_late)
    middle = fmt_time(t_early + (t_late - t_early) / 2)
    party = api.contact(early[0])["party_id"]

    def ids(**kw):
        return [c["id"] for c in api.list(token=api.agent, party=party, **kw)["items"]]

    newest_first = list(reversed(early + late))
    assert ids() == newest_first
    assert ids(since=middle) == list(reversed(late))
    assert ids(until=middle) == list(reversed(early))
    assert ids(since=fmt_time(t_early - datetime.timedelta(seconds=60)), until=middle) == \
        list(reversed(early))
    today = datetime.datetime.now(datetime.timezone.utc).date()
    day = datetime.timedelta(days=1)
    assert ids(since=today.isoformat()) == newest_first
    assert ids(since=(today - day).isoformat()) == newest_first
    assert ids(since=(today + day).isoformat()) == []
    assert ids(until=(today - day).isoformat()) == []
    assert ids(until=(today + day).isoformat()) == newest_first


def test_paging_with_limit_and_cursor(api):
    p = {"email": unique_email("paging")}
    created = [api.create(channel="web", subject="page %d" % i, party=p)["id"]
               for i in range(25)]
    party = api.contact(created[0])["party_id"]
    pages, cursor = [], None
    for _ in range(4):
        doc = api.list(token=api.agent, party=party, limit=10, cursor=cursor)
        pages.append([c["id"] for c in doc["items"]])
        cursor = doc["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
    assert [len(p) for p in pages] == [10, 10, 5], pages
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen)) == 25
    assert seen == list(reversed(created))  # newest first


def test_default_limit_is_50(api):
    p = {"email": unique_email("deflimit")}
    created = [api.create(channel="email", party=p)["id"] for _ in range(55)]
    party = api.contact(created[0])["party_id"]
    doc = api.list(token=api.agent, party=party)
    assert len(doc["items"]) == 50
    assert doc["next_cursor"]
    rest = api.list(token=api.agent, party=party, cursor=doc["next_cursor"])
    assert [c["id"] for c in rest["items"]] == list(reversed(created))[50:]
    assert rest["next_cursor"] is None


# patch --------------------------------------------------------------------------------------


def test_patch_changes_the_named_fields_only(api):
    c = api.create(**FULL)
    time.sleep(0.01)
    change = {"subject": "Afspraak paspoort", "product": "paspoort",
              "answer": "Maak online een afspraak", "department": "omgeving",
              "priority": "urgent", "tags": ["paspoort", "dringend"]}
    r = api.call("PATCH", "/api/v1/contacts/%d" % c["id"], change, token=api.agent)
    assert r.status == 200, r
    got = api.contact(c["id"])
    for key, value in change.items():
        assert got[key] == value, (key, got[key])
    for key in ("channel", "body", "language", "location", "meta", "party_id", "reference",
                "status", "line", "received_at", "created_by"):
        assert got[key] == c[key], (key, got[key], c[key])
    assert parse_time(got["updated_at"]) > parse_time(c["updated_at"])

    api.ok("PATCH", "/api/v1/contacts/%d" % c["id"], {"priority": "low"}, token=api.agent)
    again = api.contact(c["id"])
    assert again["priority"] == "low"
    assert again["subject"] == "Afspraak paspoort" and again["tags"] == ["paspoort", "dringend"]


def test_patch_unknown_contact_is_404(api):
    r = api.call("PATCH", "/api/v1/contacts/987654321", {"subject": "x"}, token=api.agent)
    assert_problem(r, 404)


# status changes -----------------------------------------------------------------------------


def test_resolve_reopen_escalate_close_reopen(api):
    c = api.create(channel="phone", department="burgerzaken", subject="rijbewijs")
    cid = c["id"]

    api.action(cid, "resolve", {"answer": "Breng uw oud rijbewijs mee"}, token=api.agent)
    got = api.contact(cid)
    assert (got["status"], got["line"]) == ("resolved", 1)
    assert got["answer"] == "Breng uw oud rijbewijs mee"

    api.action(cid, "reopen", {"reason": "burger belt terug"}, token=api.agent)
    got = api.contact(cid)
    assert (got["status"], got["line"]) == ("open", 1)

    due = "2030-12-01T12:00:00Z"
    api.action(cid, "escalate", {"department": "omgeving", "reason": "bouwdossier", "due": due},
               token=api.agent)
    got = api.contact(cid)
    assert (got["status"], got["line"]) == ("escalated", 2)
    assert len(got["tasks"]) == 1, got["tasks"]
    task = got["tasks"][0]
    assert task["department"] == "omgeving"
    assert task["reason"] == "bouwdossier"
    assert task["status"] == "open"
    assert parse_time(task["due_at"]) == parse_time(due)

    api.action(cid, "close", {"answer": "vergunning verleend"}, token=api.agent)
    got = api.contact(cid)
    assert got["status"] == "closed"
    assert got["answer"] == "vergunning verleend"
    assert [t["status"] for t in got["tasks"]] == ["done"], got["tasks"]

    api.action(cid, "reopen", {}, token=api.agent)
    got = api.contact(cid)
    assert (got["status"], got["line"]) == ("open", 1)

    assert transitions(got) == [("open", "resolved"), ("resolved", "open"),
                                ("open", "escalated"), ("escalated", "closed"),
                                ("closed", "open")], got["history"]
    for h in got["history"]:
        for key in ("at", "actor", "action", "from", "to", "detail"):
            assert key in h, h
        assert RFC3339.match(h["at"]), h
    actors = {h["actor"] for h in got["history"] if h.get("from") is not None}
    assert actors == {"t-agent"}, got["history"]
    times = [parse_time(h["at"]) for h in got["history"]]
    assert times == sorted(times), got["history"]


# (state to start from, call, status word the 409 must name)
ILLEGAL = [
    ("open", "close", "open"),
    ("open", "reopen", "open"),
    ("resolved", "resolve", "resolved"),
    ("resolved", "escalate", "resolved"),
    ("resolved", "close", "resolved"),
    ("escalated", "resolve", "escalated"),
    ("escalated", "escalate", "escalated"),
    ("escalated", "reopen", "escalated"),
    ("closed", "resolve", "closed"),
    ("closed", "escalate", "closed"),
    ("closed", "close", "closed"),
]


@pytest.mark.parametrize("state,verb,word", ILLEGAL, ids=["%s-%s" % (s, v) for s, v, _ in ILLEGAL])
def test_illegal_transition_is_409_naming_the_status(api, state, verb, word):
    c = api.in_state(state)
    body = {"department": "omgeving", "reason": "x"} if verb == "escalate" else {}
    r = api.call("POST", "/api/v1/contacts/%d/%s" % (c["id"], verb), body, token=api.agent)
    assert_status_word(r, word)
    assert api.contact(c["id"]) == c  # nothing changed


def test_status_change_of_unknown_contact_is_404(api):
    r = api.call("POST", "/api/v1/contacts/987654321/resolve", {}, token=api.agent)
    assert_problem(r, 404)


# tasks ----------------------------------------------------------------------------------------


def test_escalation_task_is_listed_and_done_closes_the_contact(api):
    c = api.create(channel="web", department="omgeving", subject="bouwaanvraag")
    api.action(c["id"], "escalate", {"department": "omgeving", "reason": "advies nodig",
                                     "due": "2030-01-15T09:00:00Z"}, token=api.agent)
    open_tasks = api.tasks(token=api.agent, department="omgeving", status="open")
    mine = [t for t in open_tasks if t["contact_id"] == c["id"]]
    assert len(mine) == 1, open_tasks
    task = mine[0]
    for key in TASK_KEYS:
        assert key in task, (key, task)
    assert task["reference"] == c["reference"]
    assert task["department"] == "omgeving"
    assert task["reason"] == "advies nodig"
    assert task["status"] == "open"
    assert task["created_by"] == "t-agent"
    assert task["done_at"] is None and task["done_by"] is None
    assert RFC3339.match(task["created_at"]) and RFC3339.match(task["due_at"]), task
    assert parse_time(task["due_at"]) == parse_time("2030-01-15T09:00:00Z")
    r = api.call("GET", "/api/v1/tasks?department=omgeving", token=api.agent)
    assert "no-store" in (r.headers.get("Cache-Control") or ""), r.headers
    assert all(t["department"] == "omgeving" and t["status"] == "open" for t in open_tasks)
    assert task["id"] not in [t["id"] for t in api.tasks(token=api.agent, status="done")]
    assert task["id"] not in [t["id"] for t in api.tasks(token=api.agent,
                                                           department="burgerzaken")]

    bo = api.token("t-bo-omgeving", "backoffice", departments=["omgeving"])
    done = api.ok("POST", "/api/v1/tasks/%d/done" % task["id"], {}, token=bo)
    assert done["id"] == task["id"]
    assert done["status"] == "done"
    assert RFC3339.match(done["done_at"] or ""), done
    assert done["done_by"] == "t-bo-omgeving"

    got = api.contact(c["id"])
    assert got["status"] == "closed", got
    assert [t["status"] for t in got["tasks"]] == ["done"]
    done_ids = [t["id"] for t in api.tasks(token=api.agent, status="done")]
    assert task["id"] in done_ids
    assert all(t["status"] == "done" for t in api.tasks(token=api.agent, status="done"))
    assert task["id"] not in [t["id"] for t in api.tasks(token=api.agent, status="open")]
    assert ("escalated", "closed") in transitions(got), got["history"]


def test_done_task_done_again_is_409(api):
    c = api.in_state("escalated", department="omgeving")
    task = c["tasks"][0]["id"]
    bo = api.token("t-bo-omgeving", "backoffice", departments=["omgeving"])
    first = api.ok("POST", "/api/v1/tasks/%d/done" % task, {}, token=bo)
    assert first["status"] == "done", first
    closed = api.contact(c["id"])
    assert closed["status"] == "closed", closed

    again = api.call("POST", "/api/v1/tasks/%d/done" % task, {}, token=api.admin)
    assert_problem(again, 409, "already done")
    # the second call changed nothing: who finished it and when stay the first call's
    assert api.contact(c["id"]) == closed
    listed = [t for t in api.tasks(token=api.admin, status="done") if t["id"] == task]
    assert len(listed) == 1 and listed[0]["done_by"] == "t-bo-omgeving", listed
    assert listed[0]["done_at"] == first["done_at"], listed


def test_done_on_unknown_task_is_404(api):
    assert_problem(api.call("POST", "/api/v1/tasks/987654321/done", {}, token=api.admin), 404)


def test_every_answer_with_personal_data_is_no_store(api):
    c = api.create(channel="phone", department="burgerzaken",
                   party={"name": "Els Wouters", "email": unique_email("nostore")})
    cid, pid = c["id"], c["party_id"]
    calls = [
        ("GET", "/api/v1/contacts/%d" % cid, None),
        ("GET", "/api/v1/contacts?party=%d" % pid, None),
        ("PATCH", "/api/v1/contacts/%d" % cid, {"priority": "high"}),
        ("POST", "/api/v1/contacts/%d/resolve" % cid, {}),
        ("POST", "/api/v1/contacts/%d/reopen" % cid, {}),
        ("POST", "/api/v1/contacts/%d/escalate" % cid, {"department": "burgerzaken"}),
        ("GET", "/api/v1/tasks?department=burgerzaken", None),
        ("GET", "/api/v1/parties/%d" % pid, None),
        ("GET", "/api/v1/parties/%d/contacts" % pid, None),
        ("GET", "/api/v1/parties?email=%s" % api.ok("GET", "/api/v1/parties/%d" % pid)
         ["emails"][0], None),
    ]
    for method, path, body in calls:
        r = api.call(method, path, body, token=api.admin)
        assert r.status == 200, r
        assert "no-store" in (r.headers.get("Cache-Control") or ""), (method, path, r.headers)
    task = api.contact(cid)["tasks"][0]["id"]
    r = api.call("POST", "/api/v1/tasks/%d/done" % task, {}, token=api.admin)
    assert r.status == 200, r
    assert "no-store" in (r.headers.get("Cache-Control") or ""), r.headers
