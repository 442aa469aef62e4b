"""The e-loket form (plugins/chan_web, docs/eloket.md): GET /loket shows the catalogue's
products grouped and digital ones first, in Dutch or English; POST /loket registers a
contact on channel web with its attachments, or shows the form again with its errors;
the guards (CSRF, honeypot, rate limit, caps, content sniffing) hold."""

import hashlib
import re
import time

import pytest

from eloket_support import (EXE, PDF, PNG, Browser, good_fields, start_eloket, web_contacts,
                            web_conf)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    a = start_eloket(tmp_path_factory.mktemp("eloket"))
    yield a
    rc = a.d.stop()
    a.d.close()
    assert rc == 0, a.d.log()


def contact_of(api, email, n=1):
    found = []
    for _ in range(100):
        found = web_contacts(api, email)
        if len(found) >= n:
            break
        time.sleep(0.05)
    return found


def test_form_lists_products_grouped_digital_first_in_dutch_and_english(api):
    nl = Browser(api.d).form()
    assert nl.status == 200
    assert '<html lang="nl-BE">' in nl.text
    assert "text/html" in nl.headers["Content-Type"]
    assert "script-src 'self'" in nl.headers["Content-Security-Policy"]
    assert "<style" not in nl.text and "style=" not in nl.text
    assert re.search(r"<script(?![^>]*\bsrc=)", nl.text) is None, "inline script"
    # The test catalogue has no themes: one group, digital products before the others.
    order = re.findall(r'name="product" value="([^"]+)"', nl.text)
    assert order == ["attest-woonst", "geboorteakte", "afvalkalender", "eid"], order
    assert "<legend" in nl.text and "<fieldset" in nl.text
    assert nl.tag_of("product") is not None and 'type="radio"' in nl.tag_of("product")
    kw = re.search(r'data-keywords="([^"]*)"[^>]*>\s*<input[^>]*value="eid"', nl.text)
    assert kw and "identiteitskaart" in kw.group(1)
    for field in ("question", "name", "email", "phone", "rrn", "attachments", "privacy",
                  "csrf", "website"):
        assert nl.tag_of(field) is not None, field
        if field not in ("csrf", "website"):
            assert 'for="%s"' % field in nl.text, "no label for " + field
    assert "tabindex=\"-1\"" in nl.tag_of("website")
    assert "6, lid 1, e" in nl.text and "10 jaar" in nl.text
    assert 'href="/loket?lang=en"' in nl.text

    en = Browser(api.d).form("/loket?lang=en")
    assert '<html lang="en">' in en.text
    assert "Ask your question" in en.text and "10 years" in en.text
    assert "6(1)(e)" in en.text
    by_header = Browser(api.d, lang="en-GB,en;q=0.8,nl;q=0.5").form()
    assert '<html lang="en">' in by_header.text


def test_post_registers_a_web_contact_with_its_attachment_byte_identical(api):
    b = Browser(api.d)
    fields = good_fields(question="Mijn vraag over mijn woonst.", phone="0470 12 34 56")
    email = dict(fields)["email"]
    page = b.post(fields, files=[("attachments", "huurcontract.pdf", "application/pdf", PDF),
                                 ("attachments", "", "application/octet-stream", b"")])
    assert page.status == 200, page
    ref = page.by_id("reference")
    assert re.match(r"^\d{4}-\d{6}$", ref), page
    assert re.search(r'<time id="expected" datetime="\d{4}-\d\d-\d\d">', page.text), page
    (c,) = contact_of(api, email)
    assert c["channel"] == "web" and c["reference"] == ref
    full = api.contact(c["id"])
    assert full["body"] == "Mijn vraag over mijn woonst."
    assert full["product"] == "attest-woonst"
    assert full["party"]["name"] == "Jan Peeters"
    msgs = api.ok("GET", "/api/v1/contacts/%s/messages" % c["id"])["items"]
    atts = msgs[0]["attachments"]
    assert len(atts) == 1, atts  # the empty file input is ignored
    assert atts[0]["name"] == "huurcontract.pdf"
    assert atts[0]["content_type"] == "application/pdf"
    assert atts[0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    r = api.call("GET", "/api/v1/contacts/%s/attachments/%s" % (c["id"], atts[0]["sha256"]),
                 token=api.admin)
    assert r.status == 200 and r.body == PDF


def test_missing_question_product_and_privacy_show_the_form_again_with_input_kept(api):
    b = Browser(api.d)
    page = b.post(good_fields(product=None, question="", privacy=None, name="Marie Claes"))
    assert page.status == 422, page
    summary = page.by_id("error-summary")
    assert summary is not None and 'role="alert"' in page.tag_of("error-summary")
    for field in ("product", "question", "privacy"):
        assert 'href="#%s"' % field in page.text, field
        assert page.by_id(field + "-error"), field
        assert "%s-error" % field in page.tag_of(field)
    assert 'aria-invalid="true"' in page.tag_of("question")
    assert page.value_of("name") == "Marie Claes"
    assert "Kies uw bijlagen opnieuw" in page.text


def test_bad_email_and_bad_rrn_are_errors_at_their_fields(api):
    b = Browser(api.d)
    page = b.post(good_fields(email="jan@@example", rrn="85.01.01-001.99",
                              question="Vraag met fouten"))
    assert page.status == 422, page
    assert page.by_id("email-error") and page.by_id("rrn-error")
    assert page.value_of("email") == "jan@@example"
    assert page.value_of("rrn") == "85.01.01-001.99"
    assert page.value_of("question") == "Vraag met fouten"
    assert "jan@@example" not in api.d.log() and "001.99" not in api.d.log()


def test_a_valid_rrn_is_kept_on_the_party(api):
    b = Browser(api.d)
    first9 = "850101123"
    rrn = first9 + "%02d" % (97 - int(first9) % 97)
    fields = good_fields(rrn=rrn[:2] + "." + rrn[2:4] + "." + rrn[4:6] + "-" + rrn[6:9] + "." +
                         rrn[9:])
    page = b.post(fields)
    assert page.status == 200, page
    (c,) = contact_of(api, dict(fields)["email"])
    party = api.ok("GET", "/api/v1/parties/%s" % api.contact(c["id"])["party_id"])
    assert party["rrn"] == rrn


@pytest.mark.parametrize("files, words", [
    ([("attachments", "a%d.png" % i, "image/png", PNG) for i in range(6)], "ten hoogste 5"),
    ([("attachments", "groot.pdf", "application/pdf", PDF + b"x" * 70000)], "te groot"),
    ([("attachments", "factuur.pdf", "application/pdf", EXE)], "geen PDF of afbeelding"),
])
def test_attachments_over_the_caps_or_not_pdf_or_image_are_refused(api, files, words):
    b = Browser(api.d)
    fields = good_fields()
    page = b.post(fields, files=files)
    assert page.status == 422, page
    assert words in page.by_id("attachments-error"), page.by_id("attachments-error")
    assert contact_of(api, dict(fields)["email"], n=0) == []


def test_csrf_missing_or_mismatched_is_refused_with_a_403_page(api):
    b = Browser(api.d)
    token = b.token()
    fields = good_fields()
    email = dict(fields)["email"]
    # Another browser's token with this browser's cookie.
    other = Browser(api.d).token()
    assert b.post(fields, token=other).status == 403
    assert b.post(fields, token="").status == 403
    # The right token without the cookie (a cross-site post carries no SameSite cookie).
    b2 = Browser(api.d, ip=b.ip)
    page = b2.post(fields, token=token)
    assert page.status == 403 and "cookies" in page.text
    assert contact_of(api, email, n=0) == []


def test_honeypot_filled_looks_accepted_but_registers_nothing(api):
    b = Browser(api.d)
    fields = good_fields(website="http://spam.example")
    page = b.post(fields)
    assert page.status == 200
    assert page.by_id("reference") is None
    time.sleep(0.3)
    assert web_contacts(api, dict(fields)["email"]) == []


def test_rate_limit_gives_a_429_page_with_retry_after(tmp_path):
    api = start_eloket(tmp_path / "rl", plugin_conf={"chan_web": web_conf(post_limit="3")})
    try:
        b = Browser(api.d)
        for _ in range(3):
            assert b.post(good_fields(question="")).status == 422
        page = b.post(good_fields())
        assert page.status == 429, page
        assert int(page.headers["Retry-After"]) > 0
        assert "probeer het opnieuw over" in page.text
        # Another client is not held up.
        assert Browser(api.d).post(good_fields()).status == 200
    finally:
        api.d.stop()
        api.d.close()


def test_a_resubmitted_form_makes_no_second_contact(api):
    b = Browser(api.d)
    token = b.token()
    fields = good_fields()
    first = b.post(fields, token=token)
    again = b.post(fields, token=token)
    assert first.status == 200 and again.status == 200
    assert first.by_id("reference") == again.by_id("reference")
    time.sleep(0.3)
    assert len(web_contacts(api, dict(fields)["email"])) == 1


def test_a_question_with_markup_is_shown_as_text(api):
    b = Browser(api.d)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    page = b.post(good_fields(question=evil, privacy=None, name='"><b>x</b>'))
    assert page.status == 422
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert page.value_of("question") == evil
    assert page.value_of("name") == '"><b>x</b>'


@pytest.mark.pgsql_only("two nodes share a register only on pgsql")
def test_a_form_from_one_node_posts_to_another(tmp_path):
    a = start_eloket(tmp_path / "n1")
    b_api = None
    try:
        from api_fixtures import ORG_CONF
        from conftest import Loketd
        b_dir = tmp_path / "n2"
        b_dir.mkdir()
        (b_dir / "catalogue.csv").write_text((tmp_path / "n1" / "catalogue.csv").read_text())
        d2 = Loketd(b_dir, plugins=("chan_web",), plugin_conf={"chan_web": web_conf()},
                    extra=ORG_CONF + "[rules]\ncatalogue = %s\n" % (b_dir / "catalogue.csv"),
                    loketd_conf={"data_dir": a.d.data_dir,
                                 "control_socket": "/tmp/loket-web-%d.sock" % a.d.port})
        d2.start()
        b_api = d2
        br = Browser(a.d)
        token = br.token()
        br.d = d2
        fields = good_fields()
        page = br.post(fields, token=token)
        assert page.status == 200, page
        assert page.by_id("reference")
        assert len(contact_of(a, dict(fields)["email"])) == 1
    finally:
        if b_api is not None:
            b_api.stop()
            b_api.close()
        a.d.stop()
        a.d.close()


def test_example_config_documents_every_chan_web_key(loketd):
    """The [plugin.chan_web] block of etc/loket.conf.example with every key switched on
    passes `loketd -t`: each documented key exists and each default is valid."""
    import os
    from conftest import SRCDIR
    with open(os.path.join(SRCDIR, "etc", "loket.conf.example")) as f:
        text = f.read()
    block = text[text.index("[plugin.chan_web]"):text.index("; The email channel")]
    lines = [l[1:] for l in block.splitlines()[1:] if l.startswith(";") and "=" in l
             and not l.startswith("; ")]
    keys = [l.split("=", 1)[0].strip() for l in lines]
    assert len(keys) == 14, keys
    d = loketd(plugins=["chan_web"], start=False)
    d.write_config(d.config() + "[plugin.chan_web]\n" + "\n".join(lines) + "\n")
    r = d.check()
    assert r.returncode == 0, r.stderr
