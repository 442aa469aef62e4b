"""What a citizen may know of one contact (plugin ABI 1.8 contact_status, through the example
plugin's POST /hello/status): the reference with the email address or phone number given with
it shows status, received and expected dates and the answer once staff sent one; any other
pair, and a confidential contact, answers one 404 (docs/plugins.md)."""

import json
import urllib.parse

import pytest

from api_fixtures import REFERENCE, RFC3339, module_api, unique_email
from conftest import SLOW, wait_for
from email_support import CITIZEN, email_conf, messages, wait_mail
from mail_fixtures import mailserver  # noqa: F401
from test_rules_support import DEFAULT_RULES, Client, example_units, rules_section


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


# the answer: a staff message on a web contact goes to the citizen by mail --------------------


def test_staff_answer_on_a_web_contact_is_mailed_and_shown_the_acknowledgement_is_not(
        loketd, mailserver):
    for user in mailserver.users:
        mailserver.clear(user)
    d = loketd(plugins=["chan_email", "hello"],
               plugin_conf={"chan_email": email_conf(mailserver)},
               extra=example_units() + rules_section(DEFAULT_RULES))
    client = Client(d)
    st, c, _, raw = client.call("POST", "/api/v1/contacts", {
        "channel": "web", "subject": "Vraag over mijn paspoort",
        "body": "Wanneer is mijn paspoort klaar?",
        "party": {"name": "Jan Peeters", "email": CITIZEN}}, token=client.agent)
    assert st == 201, raw

    def web_status():
        q = urllib.parse.urlencode({"reference": c["reference"], "contact": CITIZEN})
        st, doc, _, raw = client.call("POST", "/hello/status?" + q, {}, token=client.admin)
        assert st == 200, raw
        return doc

    # The acknowledgement goes out by mail; it is an automatic reply, not the answer.
    (ack,) = wait_mail(mailserver, CITIZEN)
    assert ack["Auto-Submitted"] == "auto-replied"
    assert wait_for(lambda: [m for m in messages(client, c["id"])
                             if m["direction"] == "out" and m["status"] == "sent"], 10 * SLOW)
    doc = web_status()
    assert doc["answer"] is None and doc["answered_at"] is None

    # Staff answer in the staff UI's way: no "via", no "to".
    answer = "Beste,\n\nUw paspoort ligt klaar aan de balie.\n\nMet vriendelijke groeten"
    st, msg, _, raw = client.call("POST", "/api/v1/contacts/%d/messages" % c["id"],
                                  {"body": answer}, token=client.agent)
    assert st == 202, raw
    assert msg["channel"] == "email" and msg["recipients"] == [CITIZEN], msg
    mails = wait_mail(mailserver, CITIZEN, count=2)
    (mail,) = [m for m in mails if m["Auto-Submitted"] is None]
    assert "[loket %s]" % c["reference"] in mail["Subject"]
    assert "Uw paspoort ligt klaar" in mail.get_body(("plain",)).get_content()

    doc = wait_for(lambda: web_status()["answer"] is not None and web_status(), 10 * SLOW)
    assert doc, web_status()
    assert doc["answer"] == answer
    assert RFC3339.match(doc["answered_at"]) and doc["answered_at"] >= doc["received_at"]

    # A message staff send someone else on the contact (a colleague, a contractor) is sent
    # later than the answer, but the citizen's status page never shows it.
    colleague = "burger3@burger.test"
    internal = "Kan jij nakijken of het paspoort van deze burger echt klaar ligt? Intern."
    st, msg, _, raw = client.call("POST", "/api/v1/contacts/%d/messages" % c["id"],
                                  {"body": internal, "to": colleague}, token=client.agent)
    assert st == 202, raw
    assert msg["recipients"] == [colleague], msg
    wait_mail(mailserver, colleague)
    assert wait_for(lambda: [m for m in messages(client, c["id"]) if m["body"] == internal
                             and m["status"] == "sent"], 10 * SLOW)
    doc = web_status()
    assert doc["answer"] == answer and "Intern" not in json.dumps(doc), doc


def test_staff_message_on_a_web_contact_without_an_address_stays_unsent(loketd, mailserver):
    d = loketd(plugins=["chan_email", "hello"],
               plugin_conf={"chan_email": email_conf(mailserver)},
               extra=example_units())
    client = Client(d)
    st, c, _, raw = client.call("POST", "/api/v1/contacts", {
        "channel": "web", "subject": "Vraag", "party": {"name": "Zonder Adres",
                                                       "phone": "+32 9 210 10 12"}},
        token=client.agent)
    assert st == 201, raw
    st, msg, _, raw = client.call("POST", "/api/v1/contacts/%d/messages" % c["id"],
                                  {"body": "Antwoord"}, token=client.agent)
    # Nothing to mail to: the message keeps the contact's own channel, as before.
    assert st == 202 and msg["channel"] == "web", raw
