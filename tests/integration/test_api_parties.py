"""Parties: the same citizen is recognised across channels however an identifier is written,
looked up by identifier, and shown with the history of every contact (docs/api.md)."""

import pytest

from api_fixtures import (PARTY_KEYS, RFC3339, assert_problem, module_api, query, unique,
                          unique_email, valid_rrn)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory)



def party_of(api, **party):
    return api.create(channel="phone", party=party)["party_id"]


def lookup(api, **params):
    return api.list("/api/v1/parties", token=api.agent, **params)["items"]


def test_email_in_another_case_is_the_same_party(api):
    local = unique("Jan.Peeters")
    first = party_of(api, name="Jan Peeters", email="%s@Example.BE" % local)
    assert isinstance(first, int)
    assert party_of(api, email="%s@example.be" % local.upper()) == first
    assert party_of(api, email="  %s@EXAMPLE.be " % local.lower()) == first
    p = api.ok("GET", "/api/v1/parties/%d" % first, token=api.agent)
    assert p["emails"] == ["%s@example.be" % local.lower()], p


def test_phone_in_any_notation_is_the_same_party(api):
    first = party_of(api, phone="0470 12 34 56")
    assert party_of(api, phone="+32 470/12.34.56") == first
    assert party_of(api, phone="0032470123456") == first
    p = api.ok("GET", "/api/v1/parties/%d" % first, token=api.agent)
    assert p["phones"] == ["+32470123456"], p


def test_rrn_with_and_without_separators_is_the_same_party(api):
    first = party_of(api, rrn="85.07.30-033.28")
    assert party_of(api, rrn="85073003328") == first
    p = api.ok("GET", "/api/v1/parties/%d" % first, token=api.agent)
    assert p["rrn"] == "85073003328", p


def test_valid_bsn_is_accepted_and_normalised(api):
    first = party_of(api, bsn="111222333")
    assert party_of(api, bsn="111.222.333") == first
    p = api.ok("GET", "/api/v1/parties/%d" % first, token=api.agent)
    assert p["bsn"] == "111222333", p
    assert [x["id"] for x in lookup(api, bsn="111222333")] == [first]


def test_party_document_shape(api):
    email = unique_email()
    pid = party_of(api, name="An Janssens", email=email, phone="+32 9 123 45 67")
    r = api.call("GET", "/api/v1/parties/%d" % pid, token=api.agent)
    assert r.status == 200, r
    assert "no-store" in (r.headers.get("Cache-Control") or ""), r.headers
    p = r.json
    for key in PARTY_KEYS:
        assert key in p, (key, p)
    assert p["id"] == pid
    assert p["name"] == "An Janssens"
    assert p["emails"] == [email]
    assert p["phones"] == ["+3291234567"]
    assert p["rrn"] is None and p["bsn"] is None
    assert p["confidential"] is False
    assert RFC3339.match(p["created_at"]), p


def test_unknown_party_is_404(api):
    assert_problem(api.call("GET", "/api/v1/parties/987654321", token=api.agent), 404)
    assert_problem(api.call("GET", "/api/v1/parties/987654321/contacts", token=api.agent), 404)


def test_matching_order_rrn_before_email_before_phone(api):
    phone = "+32 470 55 %02d %02d" % divmod(int(unique("x")[-4:], 16) % 10000, 100)
    by_phone = party_of(api, phone=phone)
    by_email_addr = unique_email("order")
    by_email = party_of(api, email=by_email_addr)
    rrn = valid_rrn(7)
    by_rrn = party_of(api, rrn=rrn)
    assert len({by_phone, by_email, by_rrn}) == 3
    # email beats phone, rrn beats email and phone
    assert party_of(api, email=by_email_addr, phone=phone) == by_email
    assert party_of(api, rrn=rrn, email=by_email_addr, phone=phone) == by_rrn


def test_lookup_by_email_phone_rrn_normalises_first(api):
    local = unique("lookup")
    rrn = valid_rrn(11)
    pid = party_of(api, name="Lies Maes", email="%s@example.be" % local,
                   phone="0471 99 88 77", rrn=rrn)
    by_email = lookup(api, email="%s@EXAMPLE.BE" % local.upper())
    assert [p["id"] for p in by_email] == [pid], by_email
    assert by_email[0]["name"] == "Lies Maes"
    assert [p["id"] for p in lookup(api, phone="+32 471 99 88 77")] == [pid]
    assert [p["id"] for p in lookup(api, phone="0032471998877")] == [pid]
    assert [p["id"] for p in lookup(api, rrn=rrn[:2] + "." + rrn[2:4] + "." + rrn[4:6] + "-" +
                                     rrn[6:9] + "." + rrn[9:])] == [pid]
    assert lookup(api, email=unique_email("nobody")) == []


@pytest.mark.parametrize("params,field", [
    ({"rrn": "12345678901"}, "rrn"),
    ({"bsn": "111252333"}, "bsn"),
    ({"email": "no-at-sign.example.be"}, "email"),
    ({"phone": "call me"}, "phone"),
])
def test_lookup_with_invalid_identifier_is_422(api, params, field):
    r = api.call("GET", query("/api/v1/parties", **params), token=api.agent)
    assert_problem(r, 422, field)


def test_history_across_channels_newest_first(api):
    email = unique_email("history")
    rrn = valid_rrn(23)
    first = api.create(channel="phone", subject="belt over premie",
                       party={"name": "Mia Claes", "email": email, "phone": "0472 10 20 30",
                              "rrn": rrn})
    pid = first["party_id"]
    second = api.create(channel="email", subject="mail over premie", party={"email": email})
    third = api.create(channel="web", subject="formulier premie",
                       party={"email": email.upper()})
    fourth = api.create(channel="counter", subject="aan de balie",
                        party={"rrn": rrn})
    assert [c["party_id"] for c in (second, third, fourth)] == [pid] * 3
    api.create(channel="phone", party={"email": unique_email("someone-else")})

    r = api.call("GET", "/api/v1/parties/%d/contacts" % pid, token=api.agent)
    assert r.status == 200, r
    assert "no-store" in (r.headers.get("Cache-Control") or ""), r.headers
    doc = r.json
    assert doc["next_cursor"] is None
    assert [c["channel"] for c in doc["items"]] == ["counter", "web", "email", "phone"]
    assert [c["id"] for c in doc["items"]] == [fourth["id"], third["id"], second["id"],
                                               first["id"]]
    assert all(c["party_id"] == pid for c in doc["items"])

    page1 = api.list("/api/v1/parties/%d/contacts" % pid, token=api.agent, limit=3)
    assert [c["id"] for c in page1["items"]] == [fourth["id"], third["id"], second["id"]]
    assert page1["next_cursor"]
    page2 = api.list("/api/v1/parties/%d/contacts" % pid, token=api.agent, limit=3,
                     cursor=page1["next_cursor"])
    assert [c["id"] for c in page2["items"]] == [first["id"]]
    assert page2["next_cursor"] is None


@pytest.mark.parametrize("party,field", [
    ({"rrn": "12345678901"}, "party.rrn"),
    ({"bsn": "111252333"}, "party.bsn"),
    ({"email": "jan@"}, "party.email"),
    ({"phone": "0470 12"}, "party.phone"),
])
def test_invalid_identifier_is_422_naming_the_field(api, party, field):
    before = api.list(token=api.agent, limit=1)["items"]
    r = api.call("POST", "/api/v1/contacts", {"channel": "phone", "party": party},
                 token=api.agent)
    assert_problem(r, 422, field)
    assert api.list(token=api.agent, limit=1)["items"] == before  # nothing stored


def test_anonymous_contact_has_no_party(api):
    c = api.create(channel="counter", subject="vraag zonder naam")
    assert c["party_id"] is None
    assert c["party"] is None
    # a name is not an identifier: still anonymous
    c = api.create(channel="web", party={"name": "Alleen een naam"})
    assert c["party_id"] is None, c
    assert api.contact(c["id"])["party_id"] is None
