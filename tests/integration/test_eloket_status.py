"""The e-loket status page (plugins/chan_web, docs/eloket.md): the reference with the email
address or phone number given with it shows the status, the expected date and, once staff
answered, the answer; every wrong pair gives one identical page, and guesses are
rate-limited. With the mail fixtures: a form with an email address gets the
acknowledgement mail with the reference, and the staff answer shows on the status page."""

import datetime
import re
import time
import urllib.parse

import pytest

from conftest import SLOW, wait_for
from eloket_support import Browser, good_fields, start_eloket, web_conf, web_contacts
from email_support import CITIZEN, email_conf, wait_mail
from mail_fixtures import mailserver  # noqa: F401
from test_rules_support import DEFAULT_RULES, CATALOGUE, example_units, rules_section


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    a = start_eloket(tmp_path_factory.mktemp("status"))
    yield a
    rc = a.d.stop()
    a.d.close()
    assert rc == 0, a.d.log()


def ask(api, **over):
    """A citizen asks through the form; returns (browser, reference, fields)."""
    b = Browser(api.d)
    fields = dict(good_fields(**over))
    page = b.post(list(fields.items()))
    assert page.status == 200, page
    return b, page.by_id("reference"), fields


def look_up(b, reference, contact, urlencoded=False, lang=None):
    path = "/loket/status" + ("?lang=" + lang if lang else "")
    if urlencoded:
        body = urllib.parse.urlencode({"reference": reference, "contact": contact})
        return b.request("POST", path, body=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    from eloket_support import multipart
    ctype, body = multipart([("reference", reference), ("contact", contact)])
    return b.request("POST", path, body=body, headers={"Content-Type": ctype})


def test_status_form_has_labelled_fields_in_dutch_and_english(api):
    b = Browser(api.d)
    page = b.request("GET", "/loket/status")
    assert page.status == 200 and '<html lang="nl-BE">' in page.text
    for field in ("reference", "contact"):
        assert page.tag_of(field) is not None and 'for="%s"' % field in page.text
    en = b.request("GET", "/loket/status?lang=en")
    assert '<html lang="en">' in en.text and "Reference number" in en.text


def test_the_right_pair_shows_status_and_expected_date(api):
    b, ref, fields = ask(api, phone="0470 11 22 33")
    page = look_up(Browser(api.d), ref, fields["email"].upper())
    assert page.status == 200, page
    assert page.by_id("status") == "Ontvangen, in behandeling"
    assert re.search(r'<time id="expected" datetime="\d{4}-\d\d-\d\d">', page.text), page
    assert page.by_id("answer") is None
    # By phone, in another spelling, urlencoded as a plain form posts it, in English.
    page = look_up(Browser(api.d), ref, "+32 470 112233", urlencoded=True, lang="en")
    assert page.status == 200, page
    assert page.by_id("status") == "Received, being handled"


def test_wrong_pairs_all_give_one_identical_page(api):
    _, ref, fields = ask(api)
    _, other_ref, _ = ask(api)
    b = Browser(api.d)
    pages = [
        look_up(b, ref, "iemand.anders@example.be"),          # wrong address
        look_up(b, "2020-999999", fields["email"]),           # no such reference
        look_up(b, other_ref, fields["email"]),               # another citizen's reference
        look_up(b, "<script>x</script>", fields["email"]),    # not a reference at all
    ]
    assert [p.status for p in pages] == [404] * 4, pages[0]
    assert len({p.raw for p in pages}) == 1, "the pages differ"
    assert "We vinden geen vraag" in pages[0].text
    assert fields["email"] not in pages[0].text and "<script>x" not in pages[0].text


def test_empty_fields_are_errors_at_their_fields(api):
    page = look_up(Browser(api.d), "", "")
    assert page.status == 422
    assert page.by_id("reference-error") and page.by_id("contact-error")
    assert 'href="#reference"' in page.text


def test_guesses_trip_the_rate_limit(tmp_path):
    api = start_eloket(tmp_path / "guess", plugin_conf={"chan_web": web_conf(status_limit="5")})
    try:
        b = Browser(api.d)
        for i in range(5):
            assert look_up(b, "2026-%06d" % (i + 1), "raad@example.be").status == 404
        page = look_up(b, "2026-000006", "raad@example.be")
        assert page.status == 429, page
        assert int(page.headers["Retry-After"]) > 0
        assert Browser(api.d).request("GET", "/loket/status").status == 200
    finally:
        api.d.stop()
        api.d.close()


def mail_eloket(loketd, ms):
    for user in ms.users:
        ms.clear(user)
    d = loketd(plugins=["chan_email", "chan_web"],
               plugin_conf={"chan_email": email_conf(ms), "chan_web": web_conf()},
               extra=example_units() + rules_section(DEFAULT_RULES, catalogue=CATALOGUE))
    from api_fixtures import Api
    return Api(d)


def test_form_with_email_gets_the_acknowledgement_and_the_answer_shows_on_status(
        loketd, mailserver):
    api = mail_eloket(loketd, mailserver)
    b = Browser(api.d)
    fields = good_fields(email=CITIZEN, product="attest-woonst")
    page = b.post(fields)
    assert page.status == 200, page
    ref = page.by_id("reference")
    (ack,) = wait_mail(mailserver, CITIZEN)
    text = ack.get_body().get_content()
    assert ref in ack["Subject"] or ref in text, ack
    # The mail promises the date the confirmation page showed (the product's service time
    # in its department's calendar), in the words the mail uses for a date.
    m = re.search(r'datetime="(\d{4})-(\d\d)-(\d\d)', page.tag_of("expected") or "")
    assert m, page
    day = datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    days = ["maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"]
    months = ["januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
              "september", "oktober", "november", "december"]
    promised = "%s %d %s %d" % (days[day.weekday()], day.day, months[day.month - 1], day.year)
    assert promised in " ".join(text.split()), (promised, text)

    # Staff answer without naming a channel: a web contact with an address is answered by mail.
    (c,) = web_contacts(api, CITIZEN)
    answer = "Beste,\n\nUw attest van woonst staat in uw e-loket.\n<b>Groeten</b>"
    r = api.call("POST", "/api/v1/contacts/%s/messages" % c["id"], {"body": answer},
                 token=api.agent)
    assert r.status == 202, r
    wait_mail(mailserver, CITIZEN, count=2)

    def answered():
        p = look_up(Browser(api.d), ref, CITIZEN)
        return p if p.by_id("answer") else None

    page = wait_for(answered, 15 * SLOW, interval=0.3)
    assert page, look_up(Browser(api.d), ref, CITIZEN)
    assert page.by_id("answer") == answer.strip()
    assert "<b>Groeten" not in page.text


def test_status_lookup_waits_for_nothing_when_the_register_answers(api):
    """A look-up is one read: it answers at once, also for many in a row."""
    _, ref, fields = ask(api)
    t = time.monotonic()
    for _ in range(5):
        assert look_up(Browser(api.d), ref, fields["email"]).status == 200
    assert time.monotonic() - t < 5 * SLOW
