"""Parties are safe from unverified input: identifiers from intake, forms, mail and calls find
a party but never extend or overwrite it; a contact keeps the address it came in with and
replies go there; disagreeing identifiers flag the contact instead of merging; staff change
and merge parties on purpose, audited (docs/api.md, "Parties")."""

import json
import re
import sqlite3
import time

import pytest

from api_fixtures import (assert_problem, module_api, query, unique, unique_email,
                          valid_rrn)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory)


def intake(api):
    return api.token("s-intake", "intake")


def party(api, pid, token=None):
    return api.ok("GET", "/api/v1/parties/%d" % pid, token=token or api.admin)


def lookup(api, **params):
    return api.list("/api/v1/parties", token=api.admin, **params)["items"]


def unique_phone():
    n = int(unique("p")[-6:], 16) % 1000000
    return "+32 470 %02d %02d %02d" % (n // 10000, n // 100 % 100, n % 100)


def e164(phone):
    return "+" + re.sub(r"\D", "", phone)


def wait_outbox(api, cid, timeout=10):
    """The outbox rows of a contact once none is pending: [(recipient, status)]."""
    deadline = time.monotonic() + timeout
    while True:
        con = api.db()
        try:
            rows = con.execute("SELECT recipient, status FROM outbox WHERE contact_id = ?"
                               " ORDER BY id", (cid,)).fetchall()
        except sqlite3.OperationalError:
            rows = [(None, "pending")]
        finally:
            con.close()
        if rows and all(status != "pending" for _, status in rows):
            return rows
        assert time.monotonic() < deadline, "outbox rows of contact %d stay pending: %r" % (
            cid, rows)
        time.sleep(0.05)


def audit_rows(api, token_name, want=1, timeout=5):
    """The audit rows of a token, once at least want are written (they go with later batches)."""
    deadline = time.monotonic() + timeout
    while True:
        con = api.db()
        try:
            rows = con.execute("SELECT action, object FROM audit WHERE token = ? ORDER BY id",
                               (token_name,)).fetchall()
        finally:
            con.close()
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


# intake never changes a party -----------------------------------------------------------


def test_intake_cannot_add_an_address_to_a_known_party(api):
    phone, own = unique_phone(), unique_email("burger")
    known = api.create(channel="phone", party={"name": "Jan Peeters", "phone": phone,
                                               "email": own})
    pid = known["party_id"]
    stranger = unique_email("evil")
    r = api.call("POST", "/api/v1/contacts",
                 {"channel": "web", "party": {"phone": phone, "email": stranger}},
                 token=intake(api))
    assert r.status == 201, r
    p = party(api, pid)
    assert p["emails"] == [own], p
    assert p["phones"] == [e164(phone)], p
    assert p["name"] == "Jan Peeters", p
    assert lookup(api, email=stranger) == []


def test_intake_cannot_rename_or_give_an_rrn_to_a_known_party(api):
    email = unique_email("naam")
    pid = api.create(channel="phone", party={"email": email})["party_id"]
    rrn = valid_rrn(101)
    r = api.call("POST", "/api/v1/contacts",
                 {"channel": "web", "party": {"email": email, "name": "Iemand Anders",
                                              "rrn": rrn}},
                 token=intake(api))
    assert r.status == 201, r
    p = party(api, pid)
    assert p["name"] is None and p["rrn"] is None, p
    assert lookup(api, rrn=rrn) == []


def test_intake_sees_only_id_reference_and_status(api):
    email = unique_email("zicht")
    api.create(channel="phone", party={"name": "Mia Claes", "email": email})
    r = api.call("POST", "/api/v1/contacts",
                 {"channel": "web", "subject": "vraag", "party": {"email": email}},
                 token=intake(api))
    assert r.status == 201, r
    assert set(r.json) == {"id", "reference", "status"}, r.json
    assert "Mia" not in r.body.decode()
    # staff still see the whole contact, matched to the known party
    c = api.contact(r.json["id"])
    assert c["party"]["name"] == "Mia Claes", c


def test_intake_retry_with_idempotency_key_sees_only_id_reference_and_status(api):
    email = unique_email("herhaald")
    api.create(channel="phone", party={"name": "Mia Claes", "email": email})
    body = {"channel": "web", "subject": "vraag", "party": {"email": email}}
    token = intake(api)
    first = api.call("POST", "/api/v1/contacts", body, token=token,
                     headers={"Idempotency-Key": "retry-" + email})
    again = api.call("POST", "/api/v1/contacts", body, token=token,
                     headers={"Idempotency-Key": "retry-" + email})
    assert first.status == 201 and again.status == 200, (first, again)
    assert set(again.json) == {"id", "reference", "status"}, again.json
    assert again.json == first.json
    assert "Mia" not in again.body.decode()


# a contact keeps its own reply address --------------------------------------------------


def test_contact_keeps_the_address_it_came_in_with(api):
    phone, email = unique_phone(), unique_email("eigen")
    by_mail = api.create(channel="email", party={"email": email, "phone": phone})
    assert by_mail["reply_to"] == email, by_mail
    by_phone = api.create(channel="phone", party={"phone": phone})
    assert by_phone["party_id"] == by_mail["party_id"]
    assert api.contact(by_phone["id"])["reply_to"] == e164(phone)
    assert api.contact(by_mail["id"])["reply_to"] == email
    assert api.create(channel="counter")["reply_to"] is None


def test_staff_reply_without_to_goes_to_the_address_the_contact_came_with(api):
    came_with = "zz-" + unique_email("eerst")
    c = api.create(channel="email", subject="vraag", party={"email": came_with})
    # staff later confirm a second address; it sorts first, as "the party's first email"
    other = "aa-" + unique_email("later")
    api.ok("PATCH", "/api/v1/parties/%d" % c["party_id"], {"add": {"email": other}})
    assert party(api, c["party_id"])["emails"] == [other, came_with]
    msg = api.ok("POST", "/api/v1/contacts/%d/messages" % c["id"],
                 {"body": "Uw aanvraag is in behandeling."}, status=202)
    assert msg["recipients"] == [came_with], msg
    listed = api.ok("GET", "/api/v1/contacts/%d/messages" % c["id"])["items"]
    assert [m["recipients"] for m in listed if m["direction"] == "out"] == [[came_with]]
    assert [r for r, _ in wait_outbox(api, c["id"])] == [came_with]


def test_staff_reply_with_to_goes_there(api):
    c = api.create(channel="email", party={"email": unique_email("met-to")})
    to = unique_email("gekozen")
    msg = api.ok("POST", "/api/v1/contacts/%d/messages" % c["id"],
                 {"body": "Zie bijlage.", "to": to}, status=202)
    assert msg["recipients"] == [to], msg


def test_mail_reply_to_a_phone_contact_needs_to(api):
    # The party has an address, but the contact came in by phone: the party's address is
    # not the one this contact came with, so a mail without "to" is refused, not guessed.
    phone = unique_phone()
    api.create(channel="email", party={"email": unique_email("bekend"), "phone": phone})
    c = api.create(channel="phone", subject="terugbellen", party={"phone": phone})
    r = api.call("POST", "/api/v1/contacts/%d/messages" % c["id"],
                 {"body": "Zie bijlage.", "via": "email"}, token=api.admin)
    assert_problem(r, 422, "to")
    assert [m for m in api.ok("GET", "/api/v1/contacts/%d/messages" % c["id"])["items"]
            if m["direction"] == "out"] == []
    to = unique_email("bevestigd")
    msg = api.ok("POST", "/api/v1/contacts/%d/messages" % c["id"],
                 {"body": "Zie bijlage.", "via": "email", "to": to}, status=202)
    assert msg["recipients"] == [to], msg


def test_intake_with_a_citizens_rrn_and_a_new_address_cannot_redirect_her_confidential_reply(
        api):
    """The reviewer's probe: an intake post with a citizen's RRN and a new address, then a
    staff reply without `to` on her confidential OCMW contact."""
    rrn, own = valid_rrn(202), unique_email("leefloon")
    secret = api.create(token=api.admin, channel="counter", department="sociale_dienst",
                        confidential=True, subject="leefloon",
                        party={"name": "An Janssens", "rrn": rrn, "email": own})
    evil = unique_email("aanvaller")
    r = api.call("POST", "/api/v1/contacts",
                 {"channel": "web", "subject": "adreswijziging",
                  "party": {"rrn": rrn, "email": evil}}, token=intake(api))
    assert r.status == 201, r
    assert set(r.json) == {"id", "reference", "status"}, r.json
    assert party(api, secret["party_id"])["emails"] == [own]
    flagged = api.contact(r.json["id"])
    assert flagged["party_id"] == secret["party_id"]
    assert flagged["party_conflict"] == {"matched_by": "rrn", "other_parties": [],
                                         "unknown": ["email"]}, flagged
    assert flagged["reply_to"] == evil

    ocmw = api.token("s-agent-ocmw", "agent", organisation="ocmw")
    msg = api.ok("POST", "/api/v1/contacts/%d/messages" % secret["id"],
                 {"body": "Uw leefloon is toegekend."}, token=ocmw, status=202)
    assert msg["recipients"] == [own], msg
    assert [r for r, _ in wait_outbox(api, secret["id"])] == [own]
    con = api.db()
    try:
        assert con.execute("SELECT count(*) FROM outbox WHERE recipient = ?",
                           (evil,)).fetchone()[0] == 0
    finally:
        con.close()


# disagreeing identifiers are flagged, not merged ----------------------------------------


def test_conflicting_identifiers_are_flagged_not_merged(api):
    email, phone = unique_email("twee"), unique_phone()
    by_email = api.create(channel="email", party={"email": email})["party_id"]
    by_phone = api.create(channel="phone", party={"phone": phone})["party_id"]
    c = api.create(channel="web", party={"email": email, "phone": phone})
    assert c["party_id"] == by_email, c  # email is the stronger match
    assert c["party_conflict"] == {"matched_by": "email", "other_parties": [by_phone],
                                   "unknown": []}, c
    got = api.contact(c["id"])
    assert got["party_conflict"] == c["party_conflict"]
    assert any(h["action"] == "party_conflict" for h in got["history"]), got["history"]
    assert party(api, by_email)["phones"] == []
    assert party(api, by_phone)["phones"] == [e164(phone)]
    # it shows in lists too
    listed = api.list(token=api.agent, party=by_email)["items"]
    assert [x["party_conflict"] for x in listed if x["id"] == c["id"]] == [c["party_conflict"]]


def test_rrn_beats_email_beats_phone_and_each_other_party_is_named(api):
    rrn, email, phone = valid_rrn(303), unique_email("sterk"), unique_phone()
    p_rrn = api.create(channel="counter", party={"rrn": rrn})["party_id"]
    p_email = api.create(channel="email", party={"email": email})["party_id"]
    p_phone = api.create(channel="phone", party={"phone": phone})["party_id"]
    c = api.create(channel="web", party={"rrn": rrn, "email": email, "phone": phone})
    assert c["party_id"] == p_rrn
    assert c["party_conflict"]["matched_by"] == "rrn"
    assert sorted(c["party_conflict"]["other_parties"]) == sorted([p_email, p_phone])


def test_known_identifiers_only_is_no_conflict(api):
    email, phone = unique_email("bekend"), unique_phone()
    first = api.create(channel="phone", party={"email": email, "phone": phone})
    again = api.create(channel="web", party={"phone": phone, "email": email.upper()})
    assert again["party_id"] == first["party_id"]
    assert again["party_conflict"] is None


def test_conflict_flag_holds_no_personal_data(api):
    email, phone = unique_email("log"), unique_phone()
    api.create(channel="email", party={"email": email})
    c = api.create(channel="web", party={"email": email, "phone": phone})
    text = json.dumps(c["party_conflict"]) + json.dumps(api.contact(c["id"])["history"])
    assert email not in text and e164(phone) not in text
    assert email not in api.d.log() and e164(phone) not in api.d.log()


def test_staff_clear_the_conflict_flag(api):
    email = unique_email("opgelost")
    api.create(channel="email", party={"email": email})
    c = api.create(channel="web", party={"email": email, "phone": unique_phone()})
    assert c["party_conflict"] is not None
    assert_problem(api.call("PATCH", "/api/v1/contacts/%d" % c["id"],
                            {"party_conflict": {"x": 1}}, token=api.agent), 422,
                   "party_conflict")
    got = api.ok("PATCH", "/api/v1/contacts/%d" % c["id"], {"party_conflict": None},
                 token=api.agent)
    assert got["party_conflict"] is None
    assert api.contact(c["id"])["party_conflict"] is None


# staff change parties on purpose --------------------------------------------------------


def test_staff_add_and_remove_an_identifier_and_it_is_audited(api):
    email = unique_email("wijzig")
    pid = api.create(channel="email", party={"email": email})["party_id"]
    phone = unique_phone()
    clerk = api.token("s-agent-patch", "agent")
    p = api.ok("PATCH", "/api/v1/parties/%d" % pid,
               {"add": {"phone": phone}, "name": "Lies Maes"}, token=clerk)
    assert p["phones"] == [e164(phone)] and p["name"] == "Lies Maes", p
    assert [x["id"] for x in lookup(api, phone=phone)] == [pid]
    p = api.ok("PATCH", "/api/v1/parties/%d" % pid, {"remove": {"email": email}}, token=clerk)
    assert p["emails"] == [], p
    assert lookup(api, email=email) == []
    rows = audit_rows(api, "s-agent-patch", want=2)
    assert [a for a, o in rows] == ["party.update", "party.update"], rows
    assert all(re.search(r"\b%d\b" % pid, o) for _, o in rows), rows
    assert all(email not in o and e164(phone) not in o for _, o in rows), rows


def test_staff_cannot_take_another_partys_identifier(api):
    mine, theirs = unique_email("mijn"), unique_email("hun")
    a = api.create(channel="email", party={"email": mine})["party_id"]
    b = api.create(channel="email", party={"email": theirs})["party_id"]
    assert_problem(api.call("PATCH", "/api/v1/parties/%d" % a, {"add": {"email": theirs}},
                            token=api.agent), 409, "party %d" % b, "merge")
    assert_problem(api.call("PATCH", "/api/v1/parties/%d" % a, {"remove": {"email": theirs}},
                            token=api.agent), 409)
    assert_problem(api.call("PATCH", "/api/v1/parties/%d" % a, {"add": {"email": "kapot"}},
                            token=api.agent), 422, "add.email")
    assert_problem(api.call("PATCH", "/api/v1/parties/%d" % a, {"kind": "org"},
                            token=api.agent), 422, "kind")
    assert party(api, b)["emails"] == [theirs]
    assert_problem(api.call("PATCH", "/api/v1/parties/%d" % a, {"add": {"email": theirs}},
                            token=intake(api)), 403)


def test_merge_moves_contacts_to_the_older_party_and_is_audited(api):
    email, phone = unique_email("oud"), unique_phone()
    old = api.create(channel="email", party={"name": "Els Wouters", "email": email})
    new = api.create(channel="phone", party={"phone": phone, "rrn": valid_rrn(404)})
    clerk = api.token("s-bo-merge", "backoffice", departments=["burgerzaken"])
    # asked on the newer party: the older one survives all the same
    merged = api.ok("POST", "/api/v1/parties/%d/merge" % new["party_id"],
                    {"party": old["party_id"]}, token=clerk)
    assert merged["id"] == old["party_id"], merged
    assert merged["emails"] == [email] and merged["phones"] == [e164(phone)], merged
    assert merged["rrn"] == valid_rrn(404) and merged["name"] == "Els Wouters", merged
    assert merged["merged"] == {"party": new["party_id"], "contacts": [new["id"]]}, merged
    moved = api.contact(new["id"])
    assert moved["party_id"] == old["party_id"]
    assert any(h["action"] == "party_merged" for h in moved["history"]), moved["history"]
    history = api.list("/api/v1/parties/%d/contacts" % old["party_id"], token=api.admin)
    assert [c["id"] for c in history["items"]] == [new["id"], old["id"]]
    assert_problem(api.call("GET", "/api/v1/parties/%d" % new["party_id"], token=api.admin),
                   404, "merged into party %d" % old["party_id"])
    assert [p["id"] for p in lookup(api, phone=phone)] == [old["party_id"]]
    rows = audit_rows(api, "s-bo-merge")
    assert any(a == "party.merge" and str(new["party_id"]) in o and str(old["party_id"]) in o
               for a, o in rows), rows
    # a new contact by the phone now finds the survivor, without a conflict
    again = api.create(channel="phone", party={"phone": phone, "email": email})
    assert again["party_id"] == old["party_id"] and again["party_conflict"] is None


def test_merge_is_for_backoffice_and_admin_and_refuses_two_rrns(api):
    a = api.create(channel="counter", party={"rrn": valid_rrn(505)})["party_id"]
    b = api.create(channel="counter", party={"rrn": valid_rrn(506)})["party_id"]
    for role_token in (api.agent, intake(api)):
        assert_problem(api.call("POST", "/api/v1/parties/%d/merge" % a, {"party": b},
                                token=role_token), 403)
    assert_problem(api.call("POST", "/api/v1/parties/%d/merge" % a, {"party": b},
                            token=api.admin), 409, "two people")
    assert_problem(api.call("POST", "/api/v1/parties/%d/merge" % a, {"party": a},
                            token=api.admin), 422)
    assert_problem(api.call("POST", "/api/v1/parties/%d/merge" % a, {"party": "b"},
                            token=api.admin), 422, "party")
    assert party(api, a)["rrn"] == valid_rrn(505) and party(api, b)["rrn"] == valid_rrn(506)


@pytest.mark.sqlite_only(reason="a SQLite file of schema 3 upgraded by its migrations")
def test_upgrade_gives_existing_contacts_their_partys_address(api):
    """Schema 3 -> 4 on a register written before: reply_to from the party's email."""
    email = unique_email("oud-register")
    c = api.create(channel="phone", party={"email": email, "phone": unique_phone()})
    api.d.stop()
    con = sqlite3.connect(api.db_path)
    try:
        # A register of schema 3 had no staff users (6 -> 7) and no search index (7 -> 8).
        for trigger in ("contacts_fts_insert", "contacts_fts_update", "contacts_fts_delete",
                        "parties_fts_insert", "parties_fts_update", "parties_fts_delete"):
            con.execute("DROP TRIGGER %s" % trigger)
        for table in ("users", "sessions", "signin_failures", "contacts_fts", "parties_fts",
                      "contacts_fts_pending", "parties_fts_pending"):
            con.execute("DROP TABLE %s" % table)
        con.execute("UPDATE contacts SET reply_to = NULL WHERE id = ?", (c["id"],))
        for col in ("contacts", "reply_to"), ("contacts", "party_conflict"), \
                ("parties", "merged_into"):
            con.execute("ALTER TABLE %s DROP COLUMN %s" % col)
        # A register of schema 3 had no events table either (4 -> 5 adds it).
        con.execute("DROP TABLE events")
        con.execute("PRAGMA user_version = 3")
        con.commit()
    finally:
        con.close()
    api.restart()
    got = api.contact(c["id"])
    assert got["reply_to"] == email, got
    assert got["party_conflict"] is None
