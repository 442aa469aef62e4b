"""GET /api/v1/contacts/{id}/attachments/{sha256} (docs/api.md, "Messages"): a document of a
contact's messages, as a download and never shown in loketd's origin, to whoever may read the
contact; nobody else learns it exists. Both drivers."""

import base64
import hashlib
import urllib.parse
import uuid

import pytest

from api_fixtures import module_api


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory, name="attachments")


def contact_with_attachment(api, name, data, content_type="application/pdf"):
    c = api.create(token=api.admin, channel="email", department="burgerzaken",
                   subject="Uw uittreksel", party={"email": "jan.%s@example.be" % uuid.uuid4().hex[:8]})
    r = api.call("POST", "/api/v1/contacts/%d/messages" % c["id"],
                 {"body": "Zie bijlage.", "to": "jan@example.be",
                  "attachments": [{"name": name, "content_type": content_type,
                                   "data": base64.b64encode(data).decode()}]},
                 token=api.admin)
    assert r.status == 202, r
    return c, hashlib.sha256(data).hexdigest()


def test_an_attachment_downloads_byte_identical_as_a_download(api):
    data = b"%PDF-1.4\n" + bytes(range(256)) * 8 + uuid.uuid4().bytes
    name = 'uittreksel <b>geboorte<b> "é"; x.pdf'
    c, sha = contact_with_attachment(api, name, data)
    r = api.call("GET", "/api/v1/contacts/%d/attachments/%s" % (c["id"], sha),
                 token=api.agent)
    assert r.status == 200, r
    assert r.body == data
    h = {k.lower(): v for k, v in r.headers.items()}
    assert h["content-type"] == "application/pdf"
    assert h["content-disposition"].startswith("attachment;"), h
    # The name as RFC 8187 gives it: percent-encoded UTF-8, nothing that could end the header.
    star = h["content-disposition"].split("filename*=UTF-8''", 1)[1]
    assert urllib.parse.unquote(star) == name, h["content-disposition"]
    assert not any(ch in star for ch in ' ";<>'), star
    assert h["x-content-type-options"] == "nosniff"
    assert h["cache-control"] == "no-store"
    assert "sandbox" in h["content-security-policy"], h


def test_an_html_attachment_is_never_served_as_a_page(api):
    data = b"<html><script>alert(1)</script></html>"
    c, sha = contact_with_attachment(api, "pagina.html", data, content_type="text/html")
    r = api.call("GET", "/api/v1/contacts/%d/attachments/%s" % (c["id"], sha), token=api.agent)
    assert r.status == 200, r
    h = {k.lower(): v for k, v in r.headers.items()}
    assert h["content-disposition"].startswith("attachment;")
    assert h["content-security-policy"].startswith("sandbox"), h


def test_an_attachment_is_only_for_who_may_read_its_contact(api):
    data = b"vertrouwelijk " + uuid.uuid4().bytes
    c, sha = contact_with_attachment(api, "dossier.pdf", data)
    other = api.token("att-bo-omgeving", "backoffice", departments=["omgeving"])
    r = api.call("GET", "/api/v1/contacts/%d/attachments/%s" % (c["id"], sha), token=other)
    assert r.status in (403, 404), r
    assert data not in r.body
    # Another contact's id with this document's hash: not this contact's document.
    c2 = api.create(token=api.admin, department="burgerzaken", subject="iets anders")
    r = api.call("GET", "/api/v1/contacts/%d/attachments/%s" % (c2["id"], sha), token=api.agent)
    assert r.status == 404 and data not in r.body, r
    # Not a hash, an upper-case one, none at all: 404; without a token: 401.
    for name in ("loket.db", "..%2floket.db", sha.upper(), "0" * 64):
        r = api.call("GET", "/api/v1/contacts/%d/attachments/%s" % (c["id"], name),
                     token=api.agent)
        assert r.status in (400, 404) and data not in r.body, (name, r)
    r = api.call("GET", "/api/v1/contacts/%d/attachments/%s" % (c["id"], sha))
    assert r.status == 401
