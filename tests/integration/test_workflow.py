"""The back office's and the agent's workflow endpoints (docs/api.md): internal notes, claiming,
forwarding and returning a task, the due preview, standard answers beside the catalogue and a
party's probable duplicates; on both drivers."""

import datetime
import os
import shutil

import pytest

from api_fixtures import (ORG_CONF, Api, assert_problem, finish_api, parse_time, query, unique,
                          unique_email, valid_rrn)
from conftest import SRCDIR, Loketd

ETC = os.path.join(SRCDIR, "etc")

CATALOGUE = """\
code,name,line,department,organisation,service_time,appointment,digital,keywords
snel,Snelle vraag,2,burgerzaken,gemeente,1d,no,yes,snel
traag,Trage vraag,1,omgeving,gemeente,,no,no,traag
"""

RULES = """\
loket.on("contact", function(c)
    if c.subject == "regel-escalatie" then
        c:escalate{ to = "omgeving", reason = "door regel", within = "1d" }
    end
end)
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workflow")
    etc = tmp / "etc"
    etc.mkdir()
    (etc / "catalogue.csv").write_text(CATALOGUE)
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "10-test.lua").write_text(RULES)
    extra = ORG_CONF + "[rules]\ndir = %s\ncatalogue = %s\n" % (rules, etc / "catalogue.csv")
    d = Loketd(tmp, extra=extra)
    d.start()
    a = Api(d)
    a.etc = etc
    yield a
    finish_api(a)


def tok(api, who):
    return {
        "agent": lambda: api.agent,
        "admin": lambda: api.admin,
        "bo-bz": lambda: api.token("wf-bo-bz", "backoffice", departments=["burgerzaken"],
                                   organisation="gemeente"),
        "bo-bz2": lambda: api.token("wf-bo-bz2", "backoffice", departments=["burgerzaken"],
                                    organisation="gemeente"),
        "bo-om": lambda: api.token("wf-bo-om", "backoffice", departments=["omgeving"],
                                   organisation="gemeente"),
        "bo-sd": lambda: api.token("wf-bo-sd", "backoffice", departments=["sociale_dienst"],
                                   organisation="ocmw"),
    }[who]()


def escalated(api, department="burgerzaken", **fields):
    """A new contact escalated to department; returns (contact, its open task)."""
    fields.setdefault("subject", unique("vraag"))
    c = api.create(department=department, **fields)
    c = api.action(c["id"], "escalate", {"department": department, "reason": "tweede lijn"})
    task = [t for t in c["tasks"] if t["status"] == "open"][0]
    return c, task


# notes -----------------------------------------------------------------------------------

def test_note_shows_in_history_and_never_in_messages(api):
    c = api.create(department="burgerzaken", subject=unique("notitie"),
                   party={"name": "Nota Persoon", "email": unique_email()})
    r = api.call("POST", "/api/v1/contacts/%d/notes" % c["id"],
                 {"text": "Burger belde terug, wacht op attest."}, token=api.agent)
    assert r.status == 201, r
    notes = [h for h in r.json["history"] if h.get("kind") == "note"]
    assert len(notes) == 1, r.json["history"]
    assert notes[0]["text"] == "Burger belde terug, wacht op attest."
    assert notes[0]["actor"] == "t-agent" and notes[0]["at"], notes[0]
    again = api.contact(c["id"])
    assert [h for h in again["history"] if h.get("kind") == "note"] == notes
    msgs = api.ok("GET", "/api/v1/contacts/%d/messages" % c["id"])["items"]
    assert not [m for m in msgs if "wacht op attest" in (m.get("body") or "")], msgs


def test_note_is_scoped_and_checked(api):
    c = api.create(department="burgerzaken", subject=unique("notitie"))
    r = api.call("POST", "/api/v1/contacts/%d/notes" % c["id"], {"text": "mag niet"},
                 token=tok(api, "bo-om"))
    assert r.status in (403, 404), r
    assert not [h for h in api.contact(c["id"])["history"] if h.get("kind") == "note"]
    for bad in ({"text": ""}, {"text": "   "}, {"text": "x" * 10001}, {"text": 5}, {},
                {"text": "a", "extra": 1}):
        r = api.call("POST", "/api/v1/contacts/%d/notes" % c["id"], bad, token=api.agent)
        assert_problem(r, 422)
    r = api.call("POST", "/api/v1/contacts/%d/notes" % c["id"], {"text": "x" * 10000},
                 token=api.agent)
    assert r.status == 201, r


# tasks -----------------------------------------------------------------------------------

def test_claim_conflict_and_release(api):
    c, task = escalated(api)
    url = "/api/v1/tasks/%d/claim" % task["id"]
    r = api.call("POST", url, token=tok(api, "bo-bz"))
    assert r.status == 200, r
    assert r.json["id"] == task["id"] and r.json["assignee"] == "wf-bo-bz", r
    # Another clerk of the same department cannot take it: 409 naming who holds it.
    r = api.call("POST", url, token=tok(api, "bo-bz2"))
    assert_problem(r, 409, "wf-bo-bz")
    r = api.call("POST", url, {"release": True}, token=tok(api, "bo-bz2"))
    assert_problem(r, 409, "wf-bo-bz")
    # Another department's clerk may not act on it at all.
    r = api.call("POST", url, token=tok(api, "bo-om"))
    assert r.status in (403, 404), r
    # The holder gives it back; then the other clerk takes it.
    r = api.call("POST", url, {"release": True}, token=tok(api, "bo-bz"))
    assert r.status == 200 and r.json["assignee"] is None, r
    r = api.call("POST", url, token=tok(api, "bo-bz2"))
    assert r.status == 200 and r.json["assignee"] == "wf-bo-bz2", r
    # An admin may release whoever holds it.
    r = api.call("POST", url, {"release": True}, token=api.admin)
    assert r.status == 200 and r.json["assignee"] is None, r
    assert [t["assignee"] for t in api.contact(c["id"])["tasks"]] == [None]
    r = api.call("POST", url, token=api.agent)
    assert_problem(r, 403)


def test_forward_moves_department_and_opens_a_new_task(api):
    c, task = escalated(api, product="snel")
    r = api.call("POST", "/api/v1/tasks/%d/forward" % task["id"],
                 {"department": "omgeving", "reason": "hoort bij omgeving"},
                 token=tok(api, "bo-bz"))
    assert r.status == 200, r
    doc = r.json
    assert doc["department"] == "omgeving" and doc["status"] == "escalated", doc
    assert doc["line"] == 2
    old = [t for t in doc["tasks"] if t["id"] == task["id"]][0]
    assert old["status"] == "done" and old["department"] == "burgerzaken", old
    new = [t for t in doc["tasks"] if t["status"] == "open"]
    assert len(new) == 1 and new[0]["department"] == "omgeving", doc["tasks"]
    assert new[0]["reason"] == "hoort bij omgeving" and new[0]["due_at"], new[0]
    rows = [h for h in doc["history"] if h["action"] == "forward"]
    assert rows and rows[0]["detail"] == "hoort bij omgeving", doc["history"]
    assert doc == api.contact(c["id"])
    # The old task is done: a second forward or a return of it is refused.
    r = api.call("POST", "/api/v1/tasks/%d/forward" % task["id"],
                 {"department": "burgerzaken", "reason": "nog eens"}, token=api.admin)
    assert_problem(r, 409, "done")
    r = api.call("POST", "/api/v1/tasks/%d/return" % task["id"], {"reason": "nog eens"},
                 token=api.admin)
    assert_problem(r, 409, "done")


def test_forward_keeps_old_due_without_service_time(api):
    due = "2031-03-04T10:00:00.000Z"
    c2 = api.create(department="burgerzaken", subject=unique("vraag"))
    c2 = api.action(c2["id"], "escalate", {"department": "burgerzaken", "reason": "x",
                                           "due": due})
    t2 = c2["tasks"][0]
    r = api.call("POST", "/api/v1/tasks/%d/forward" % t2["id"],
                 {"department": "omgeving", "reason": "verder"}, token=api.admin)
    assert r.status == 200, r
    new = [t for t in r.json["tasks"] if t["status"] == "open"][0]
    assert new["due_at"] == due, new


def test_forward_of_confidential_contact_stays_in_its_organisation(api):
    c = api.create(token=api.admin, department="sociale_dienst", confidential=True,
                   subject=unique("vertrouwelijk"))
    c = api.action(c["id"], "escalate", {"department": "sociale_dienst", "reason": "x"})
    task = c["tasks"][0]
    before = api.contact(c["id"])
    r = api.call("POST", "/api/v1/tasks/%d/forward" % task["id"],
                 {"department": "omgeving", "reason": "naar de gemeente"},
                 token=tok(api, "bo-sd"))
    assert_problem(r, 403, "ocmw", "gemeente")
    assert api.contact(c["id"]) == before


def test_forward_and_return_need_a_reason(api):
    c, task = escalated(api)
    for body in ({"department": "omgeving"}, {"department": "omgeving", "reason": ""},
                 {"reason": "x"}, {"department": "nergens", "reason": "x"}):
        assert_problem(api.call("POST", "/api/v1/tasks/%d/forward" % task["id"], body,
                                token=api.admin), 422)
    for body in ({}, {"reason": "  "}):
        assert_problem(api.call("POST", "/api/v1/tasks/%d/return" % task["id"], body,
                                token=api.admin), 422)
    assert api.contact(c["id"])["tasks"][0]["status"] == "open"
    assert_problem(api.call("POST", "/api/v1/tasks/999999/return", {"reason": "x"},
                            token=api.admin), 404)


def test_return_puts_contact_back_to_the_first_line(api):
    c, task = escalated(api)
    r = api.call("POST", "/api/v1/tasks/%d/return" % task["id"],
                 {"reason": "eerste lijn kan dit beantwoorden"}, token=tok(api, "bo-bz"))
    assert r.status == 200, r
    doc = r.json
    assert doc["status"] == "open" and doc["line"] == 1, doc
    assert all(t["status"] == "done" for t in doc["tasks"]), doc["tasks"]
    rows = [h for h in doc["history"] if h["action"] == "return"]
    assert rows and rows[0]["detail"] == "eerste lijn kan dit beantwoorden", doc["history"]
    r = api.call("POST", "/api/v1/tasks/%d/done" % task["id"], {}, token=api.admin)
    assert_problem(r, 409)


# due preview -----------------------------------------------------------------------------

def test_due_preview_counts_open_days(api):
    # Friday 2030-03-15 15:00 in Brussels (14:00Z): one open day later is Monday 15:00.
    doc = api.ok("GET", query("/api/v1/due", department="burgerzaken", product="snel",
                              **{"from": "2030-03-15T14:00:00Z"}), token=api.agent)
    assert doc["within"] == "1d", doc
    assert parse_time(doc["due_at"]) == datetime.datetime(2030, 3, 18, 14, 0,
                                                          tzinfo=datetime.timezone.utc), doc
    assert doc["calendar"] == "default", doc
    doc = api.ok("GET", query("/api/v1/due", department="omgeving",
                              **{"from": "2030-03-15T14:00:00Z"}), token=api.agent)
    assert doc["within"] == "5d", doc
    assert parse_time(doc["due_at"]) == datetime.datetime(2030, 3, 22, 14, 0,
                                                          tzinfo=datetime.timezone.utc), doc


def test_due_preview_agrees_with_a_rule(api):
    c = api.create(subject="regel-escalatie")
    c = api.contact(c["id"])
    assert c["status"] == "escalated", c
    rule_due = parse_time(c["tasks"][0]["due_at"])
    received = c["received_at"]
    doc = api.ok("GET", query("/api/v1/due", department="omgeving", product="snel",
                              **{"from": received}), token=api.agent)
    # The rule ran a moment after the contact was received: the same open day, within seconds.
    assert abs((parse_time(doc["due_at"]) - rule_due).total_seconds()) < 5, (doc, rule_due)


def test_due_preview_refuses_unknown_parameters(api):
    assert_problem(api.call("GET", query("/api/v1/due", department="nergens"),
                            token=api.agent), 422, "department")
    assert_problem(api.call("GET", "/api/v1/due", token=api.agent), 422, "department")
    assert_problem(api.call("GET", query("/api/v1/due", department="omgeving",
                                         product="bestaat-niet"), token=api.agent),
                   422, "product")
    assert_problem(api.call("GET", query("/api/v1/due", department="omgeving",
                                         **{"from": "gisteren"}), token=api.agent),
                   422, "from")


# standard answers ------------------------------------------------------------------------

def answers(api):
    return {p["code"]: p["standard_answer"]
            for p in api.ok("GET", "/api/v1/catalogue", token=api.agent)["items"]}


def test_standard_answer_put_get_delete_survives_restart(api):
    assert answers(api) == {"snel": None, "traag": None}
    text = "Beste burger,\nUw attest is klaar.\n"
    r = api.call("PUT", "/api/v1/catalogue/snel/answer", {"text": text}, token=api.admin)
    assert r.status == 200 and r.json["standard_answer"] == text, r
    assert answers(api)["snel"] == text
    assert (api.etc / "answers" / "snel.txt").read_text() == text
    api.restart()
    assert answers(api) == {"snel": text, "traag": None}
    r = api.call("DELETE", "/api/v1/catalogue/snel/answer", token=api.admin)
    assert r.status == 200 and r.json["standard_answer"] is None, r
    assert not (api.etc / "answers" / "snel.txt").exists()
    r = api.call("PUT", "/api/v1/catalogue/traag/answer", {"text": "x"}, token=api.admin)
    assert r.status == 200
    r = api.call("PUT", "/api/v1/catalogue/traag/answer", {"text": ""}, token=api.admin)
    assert r.status == 200 and r.json["standard_answer"] is None, r
    assert answers(api) == {"snel": None, "traag": None}


def test_standard_answer_refuses_strangers_and_paths(api):
    r = api.call("PUT", "/api/v1/catalogue/snel/answer", {"text": "x"}, token=api.agent)
    assert_problem(r, 403)
    for code in ("..%2F..%2Fcatalogue", "bestaat-niet", "..", "snel.txt"):
        r = api.call("PUT", "/api/v1/catalogue/%s/answer" % code, {"text": "x"},
                     token=api.admin)
        assert r.status == 404, r
    assert sorted(os.listdir(api.etc)) in (["catalogue.csv"], ["answers", "catalogue.csv"])
    assert_problem(api.call("PUT", "/api/v1/catalogue/snel/answer", {"text": 1},
                            token=api.admin), 422, "text")
    assert_problem(api.call("PUT", "/api/v1/catalogue/snel/answer", {"text": "a\u0000b"},
                            token=api.admin), 422, "text")


# duplicates ------------------------------------------------------------------------------

def party_of(api, **party):
    c = api.create(token=api.admin, department="burgerzaken", subject=unique("p"),
                   party=party)
    return c["party_id"]


def test_duplicates_by_folded_name_not_other_rrn(api):
    name = unique("Jan")
    a = party_of(api, name="%s Peeters" % name, email=unique_email())
    b = party_of(api, name="  %s  peeters" % name.lower(), phone="+3250%06d" % (os.getpid() % 999999))
    c = party_of(api, name="%s Peetérs" % name, rrn=valid_rrn(401))
    d = party_of(api, name="%s Peeters" % name, rrn=valid_rrn(402))
    e = party_of(api, name="%s Peeters Jr" % name, email=unique_email())
    found = [p["id"] for p in api.ok("GET", "/api/v1/parties/%d/duplicates" % a,
                                     token=api.agent)["items"]]
    assert sorted(found) == sorted([b, c, d]), found
    # c and d hold different RRNs: not the same person.
    found = [p["id"] for p in api.ok("GET", "/api/v1/parties/%d/duplicates" % c,
                                     token=api.agent)["items"]]
    assert d not in found and a in found and b in found, found
    assert e not in found


def test_duplicates_by_email_variant(api):
    local = unique("an")
    a = party_of(api, name="A", email="%s@example.be" % local)
    b = party_of(api, name="B", email="%s+werk@example.be" % local.replace("-", ".-"))
    found = [p["id"] for p in api.ok("GET", "/api/v1/parties/%d/duplicates" % a,
                                     token=api.agent)["items"]]
    assert found == [b], found


def test_duplicates_hide_confidential_parties_outside_scope(api):
    name = unique("Geheim")
    a = party_of(api, name="%s Persoon" % name, email=unique_email())
    c = api.create(token=api.admin, department="sociale_dienst", confidential=True,
                   subject=unique("v"), party={"name": "%s persoon" % name,
                                               "email": unique_email()})
    hidden = c["party_id"]
    found = [p["id"] for p in api.ok("GET", "/api/v1/parties/%d/duplicates" % a,
                                     token=tok(api, "bo-bz"))["items"]]
    assert hidden not in found, found
    found = [p["id"] for p in api.ok("GET", "/api/v1/parties/%d/duplicates" % a,
                                     token=tok(api, "bo-sd"))["items"]]
    assert hidden in found, found
    assert_problem(api.call("GET", "/api/v1/parties/%d/duplicates" % hidden,
                            token=tok(api, "bo-bz")), 403)
