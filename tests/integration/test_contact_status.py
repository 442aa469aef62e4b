"""What a citizen may know of one contact (plugin ABI 1.8 contact_status, through the example
plugin's POST /hello/status): the reference with the email address or phone number given with
it shows status, received and expected dates and the answer once staff sent one; any other
pair, and a confidential contact, answers one 404 (docs/plugins.md)."""

import urllib.parse

import pytest

from api_fixtures import REFERENCE, RFC3339, module_api, unique_email


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory, "status", plugins=["hello"])


def status(api, reference, contact):
    q = urllib.parse.urlencode({"reference": reference, "contact": contact})
    return api.call("POST", "/hello/status?" + q, b"", token=api.admin)


@pytest.fixture(scope="module")
def web(api):
    """A web contact of a citizen who gave an email address and a phone number."""
    email = unique_email("status")
    c = api.create(channel="web", subject="Vraag over mijn paspoort",
                   body="Wanneer is mijn paspoort klaar?",
                   party={"name": "An Status", "email": email, "phone": "+32 9 210 10 10"})
    return {"contact": c, "email": email}


def test_status_by_email_in_any_case_shows_only_what_the_citizen_may_know(api, web):
    ref = web["contact"]["reference"]
    assert REFERENCE.match(ref)
    r = status(api, ref, "  " + web["email"].upper() + " ")
    assert r.status == 200, r
    doc = r.json
    assert set(doc) == {"reference", "status", "received_at", "expected_at", "answered_at",
                        "answer"}
    assert doc["reference"] == ref and doc["status"] == "open"
    assert RFC3339.match(doc["received_at"]) and RFC3339.match(doc["expected_at"])
    assert doc["expected_at"] > doc["received_at"]
    assert doc["answer"] is None and doc["answered_at"] is None


def test_status_takes_the_reference_with_its_c_prefix(api, web):
    r = status(api, "C-" + web["contact"]["reference"], web["email"])
    assert r.status == 200, r
    assert r.json["reference"] == web["contact"]["reference"]


@pytest.mark.parametrize("phone", ["+32 9 210 10 10", "+3292101010", "09/210.10.10",
                                   "0032 9 210 10 10"])
def test_status_by_phone_compares_the_number_not_its_spelling(api, web, phone):
    r = status(api, web["contact"]["reference"], phone)
    assert r.status == 200, r
    assert r.json["reference"] == web["contact"]["reference"]


def test_mismatches_answer_one_404_whatever_is_wrong(api, web):
    ref = web["contact"]["reference"]
    year, num = ref.split("-")
    unknown = "%s-%06d" % (year, int(num) + 900000 if int(num) < 99999 else 1)
    answers = [
        status(api, ref, unique_email("ander")),        # another address
        status(api, ref, "+32 9 210 10 11"),            # another number
        status(api, ref, "geen adres"),                 # neither
        status(api, unknown, web["email"]),             # no such reference
        status(api, "2026-abc", web["email"]),          # not a reference at all
    ]
    for r in answers:
        assert r.status == 404, r
    # One answer: nothing in it tells which part was wrong.
    assert len({r.body for r in answers}) == 1


def test_another_citizens_address_does_not_open_a_contact(api, web):
    other = api.create(channel="web", subject="Andere vraag",
                       party={"name": "Bert Ander", "email": unique_email("bert")})
    assert status(api, other["reference"], web["email"]).status == 404
    assert status(api, web["contact"]["reference"], web["email"]).status == 200


def test_a_confidential_contact_is_never_shown(api):
    email = unique_email("vertrouwelijk")
    c = api.create(token=api.admin, channel="web", department="sociale_dienst",
                   confidential=True, subject="schuldhulp",
                   party={"name": "Karel Verborgen", "email": email})
    r = status(api, c["reference"], email)
    assert r.status == 404, r
    assert r.body == status(api, c["reference"], unique_email("x")).body


def test_expected_is_gone_once_the_contact_is_answered(api):
    email = unique_email("opgelost")
    c = api.create(channel="web", subject="Vraag", party={"name": "Opgelost", "email": email})
    assert status(api, c["reference"], email).json["expected_at"] is not None
    api.action(c["id"], "resolve", {"answer": "Uw paspoort is klaar."})
    doc = status(api, c["reference"], email).json
    assert doc["status"] == "resolved" and doc["expected_at"] is None
    # Resolving with an answer is no message sent to the citizen.
    assert doc["answer"] is None
