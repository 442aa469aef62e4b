"""Helpers for the e-loket tests (plugins/chan_web, docs/eloket.md): a daemon with a small
catalogue and chan_web, a browser-like client that keeps the form's cookie, and a
multipart/form-data body built by hand, as a browser sends it."""

import html
import http.client
import re
import urllib.parse
import uuid

from api_fixtures import ORG_CONF, Api
from conftest import Loketd

CATALOGUE = """\
code,name,line,department,organisation,service_time,appointment,digital,keywords
afvalkalender,Afvalkalender en ophaaldagen,1,,gemeente,,no,no,afvalkalender ophaaldag
attest-woonst,Attest van woonst,1,burgerzaken,gemeente,,no,yes,woonst woonattest
eid,Elektronische identiteitskaart (eID),2,burgerzaken,gemeente,2d,yes,no,eid identiteitskaart
geboorteakte,Uittreksel uit een geboorteakte,2,burgerzaken,gemeente,1d,no,yes,geboorteakte
"""

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n\x00\x01\x02\r\n--not-a-boundary\r\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64


def web_conf(**over):
    """[plugin.chan_web] for tests: each test names its client with X-Forwarded-For so that
    the per-client limits of one test do not reach another."""
    conf = {"client_header": "X-Forwarded-For", "post_limit": "50", "status_limit": "50",
            "max_attachment_size": "64k", "organisation": "Gemeente Voorbeeld"}
    conf.update(over)
    return conf


def start_eloket(tmp_dir, plugins=("chan_web",), plugin_conf=None, extra="", **kw):
    tmp_dir.mkdir(parents=True, exist_ok=True)
    cat = tmp_dir / "catalogue.csv"
    cat.write_text(CATALOGUE)
    conf = {"chan_web": web_conf()}
    conf.update(plugin_conf or {})
    d = Loketd(tmp_dir, plugins=plugins, plugin_conf=conf,
               extra=ORG_CONF + "[rules]\ncatalogue = %s\n" % cat + extra, **kw)
    d.start()
    return Api(d)


def new_client_ip():
    n = uuid.uuid4().int
    return "10.%d.%d.%d" % (n % 250 + 1, (n >> 8) % 250 + 1, (n >> 16) % 250 + 1)


def multipart(fields, files=()):
    """A multipart/form-data body: fields is a list of (name, value), files of
    (name, filename, content_type, bytes). Returns (content_type, body)."""
    boundary = "----loketTest" + uuid.uuid4().hex
    out = []
    for name, value in fields:
        out.append(b"--" + boundary.encode() + b"\r\n")
        out.append(b'Content-Disposition: form-data; name="%s"\r\n\r\n' % name.encode())
        out.append(value.encode() if isinstance(value, str) else value)
        out.append(b"\r\n")
    for name, filename, ctype, data in files:
        out.append(b"--" + boundary.encode() + b"\r\n")
        out.append(b'Content-Disposition: form-data; name="%s"; filename="%s"\r\n'
                   % (name.encode(), filename.encode()))
        out.append(b"Content-Type: %s\r\n\r\n" % ctype.encode())
        out.append(data)
        out.append(b"\r\n")
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return "multipart/form-data; boundary=" + boundary, b"".join(out)


class Page:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        self.text = body.decode("utf-8")

    def by_id(self, ident):
        """The inner text of the element with this id (tags stripped, entities decoded)."""
        m = re.search(r'<(\w+)[^>]*\bid="%s"[^>]*>(.*?)</\1>' % re.escape(ident), self.text,
                      re.S)
        if not m:
            return None
        return html.unescape(re.sub(r"<[^>]+>", "", m.group(2))).strip()

    def tag_of(self, ident):
        m = re.search(r'<[^>]*\bid="%s"[^>]*>' % re.escape(ident), self.text)
        return m.group(0) if m else None

    def value_of(self, name):
        """The value of the input called name (textarea: its text)."""
        m = re.search(r'<input[^>]*\bname="%s"[^>]*\bvalue="([^"]*)"' % re.escape(name),
                      self.text)
        if m:
            return html.unescape(m.group(1))
        m = re.search(r'<textarea[^>]*\bname="%s"[^>]*>(.*?)</textarea>' % re.escape(name),
                      self.text, re.S)
        return html.unescape(m.group(1)) if m else None

    def __repr__(self):
        return "<Page %d %s>" % (self.status, self.text[:2000])


class Browser:
    """What a browser does for the e-loket: keeps the csrf cookie, posts the form."""

    def __init__(self, d, ip=None, lang=None):
        self.d = d
        self.cookie = None
        self.ip = ip or new_client_ip()
        self.lang = lang

    def request(self, method, path, body=None, headers=None):
        h = {"X-Forwarded-For": self.ip}
        if self.cookie:
            h["Cookie"] = self.cookie
        if self.lang:
            h["Accept-Language"] = self.lang
        h.update(headers or {})
        conn = http.client.HTTPConnection(self.d.host, self.d.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            status, headers, data = resp.status, resp.headers, resp.read()
        finally:
            conn.close()
        for c in headers.get_all("Set-Cookie") or []:
            self.cookie = c.split(";", 1)[0]
        return Page(status, headers, data)

    def form(self, path="/loket"):
        page = self.request("GET", path)
        assert page.status == 200, page
        return page

    def token(self, page=None):
        page = page or self.form()
        return page.value_of("csrf")

    def post(self, fields, files=(), token=None, path="/loket"):
        if token is None:
            token = self.token()
        ctype, body = multipart([("csrf", token)] + list(fields), files)
        return self.request("POST", path, body=body, headers={"Content-Type": ctype})


def good_fields(**over):
    f = {"product": "attest-woonst", "question": "Ik verhuis op 1 juni. Wat moet ik doen?",
         "name": "Jan Peeters", "email": "jan.%s@example.be" % uuid.uuid4().hex[:10],
         "phone": "", "rrn": "", "privacy": "yes", "website": ""}
    f.update(over)
    return [(k, v) for k, v in f.items() if v is not None]


def web_contacts(api, email):
    """The web contacts of the party with this email address, through the staff API."""
    parties = api.ok("GET", "/api/v1/parties?email=" + urllib.parse.quote(email))["items"]
    out = []
    for p in parties:
        items = api.ok("GET", "/api/v1/parties/%s/contacts?limit=500" % p["id"])["items"]
        out += [c for c in items if c["channel"] == "web"]
    return out
