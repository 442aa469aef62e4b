"""Staff users and sessions (docs/api.md, "Sessions"; README, "Staff users").

Users are made with `loketctl user add` (the password on standard input), sign in with
POST /api/v1/session and then act through the loket_session cookie: as their role,
departments and organisation, with X-CSRF-Token on every change. Sessions, users and failed
sign-ins live in the register, so the same holds on every node sharing it
(test_pgsql_sessions.py). Runs on both drivers.
"""
import json
import re
import subprocess
import time

import pytest

from api_fixtures import ORG_CONF, Api, unique
from conftest import LOKETCTL, SLOW, wait_for

PASSWORD = "correct horse battery"


def start(loketd, **http):
    conf = {"session_idle": "30m"}
    conf.update(http)
    d = loketd(extra=ORG_CONF, http=conf)
    return Api(d)


def ctl(api, *args, password=None):
    """loketctl with the password on standard input (a pipe, not a terminal)."""
    return subprocess.run([LOKETCTL, "-c", api.d.conf_path] + list(args),
                          input="" if password is None else password + "\n",
                          capture_output=True, text=True, timeout=30 * SLOW)


def user_add(api, name, role, *options, password=PASSWORD):
    r = ctl(api, "user", "add", name, role, *options, password=password)
    assert r.returncode == 0, "user add failed: %s %s\n%s" % (r.stdout, r.stderr, api.d.log())
    return r


class Browser:
    """A cookie jar of one: what a browser keeps for loketd's origin."""

    def __init__(self, api):
        self.api = api
        self.cookie = None
        self.csrf = None

    def sign_in(self, name, password=PASSWORD, headers=None):
        r = self.api.call("POST", "/api/v1/session", {"username": name, "password": password},
                          headers=headers)
        if r.status == 200:
            self.cookie = cookie_value(r)
            self.csrf = r.json["csrf"]
        return r

    def call(self, method, path, body=None, csrf=True, headers=None):
        h = dict(headers or {})
        if self.cookie is not None:
            h["Cookie"] = "loket_session=" + self.cookie
        if csrf is True and self.csrf is not None:
            h["X-CSRF-Token"] = self.csrf
        elif isinstance(csrf, str):
            h["X-CSRF-Token"] = csrf
        return self.api.call(method, path, body, headers=h)


def cookie_value(resp):
    sc = resp.headers.get("Set-Cookie")
    assert sc, "no Set-Cookie in %r" % resp
    m = re.match(r"loket_session=([^;]*)", sc)
    assert m, sc
    return m.group(1)


# users --------------------------------------------------------------------------------------


def test_user_add_list_passwd_disable_through_loketctl(loketd):
    api = start(loketd)
    user_add(api, "an.agent", "agent", "--organisation", "gemeente", "--extension", "201")
    user_add(api, "bo", "backoffice", "--department", "burgerzaken", "--department", "omgeving")
    r = ctl(api, "user", "list")
    assert r.returncode == 0, r.stderr
    assert "an.agent" in r.stdout and "bo" in r.stdout and "201" in r.stdout
    assert "burgerzaken" in r.stdout and "active" in r.stdout
    # No hash (nor anything like one) is shown.
    assert "argon2" not in r.stdout and "$" not in r.stdout, r.stdout
    # The same name twice is refused.
    r = ctl(api, "user", "add", "bo", "agent", password=PASSWORD)
    assert r.returncode != 0 and "exists" in r.stderr
    # A new password: the old one no longer signs in, the new one does.
    r = ctl(api, "user", "passwd", "an.agent", password="another long secret")
    assert r.returncode == 0, r.stderr
    assert Browser(api).sign_in("an.agent").status == 401
    assert Browser(api).sign_in("an.agent", "another long secret").status == 200
    r = ctl(api, "user", "disable", "bo")
    assert r.returncode == 0, r.stderr
    r = ctl(api, "user", "list")
    assert re.search(r"^bo\s+backoffice\s+disabled", r.stdout, re.M), r.stdout
    # The register holds the hash, never the password; the log holds neither.
    log = api.d.log()
    assert PASSWORD not in log and "another long secret" not in log and "argon2" not in log
    db = api.d.db()
    try:
        row = db.execute("SELECT hash FROM users WHERE name = ?", ("bo",)).fetchone()
    finally:
        db.close()
    assert row[0].startswith("$argon2id$") and PASSWORD not in row[0]


@pytest.mark.parametrize("password, words", [
    ("", "empty"),
    ("short", "too short"),
    ("ninechars", "too short"),
])
def test_user_add_refuses_an_empty_or_short_password(loketd, password, words):
    api = start(loketd)
    r = ctl(api, "user", "add", "kort", "agent", password=password)
    assert r.returncode != 0
    assert words in r.stderr, r.stderr
    assert "kort" not in ctl(api, "user", "list").stdout


def test_user_add_refuses_bad_role_department_and_organisation(loketd):
    api = start(loketd)
    for args, words in [(("x1", "intake"), "agent, backoffice or admin"),
                        (("x2", "backoffice"), "at least one --department"),
                        (("x3", "backoffice", "--department", "nope"), "nope"),
                        (("x4", "agent", "--organisation", "nope"), "nope"),
                        (("x5", "agent", "--extension", "12a"), "extension")]:
        r = ctl(api, "user", "add", *args, password=PASSWORD)
        assert r.returncode != 0 and words in r.stderr, (args, r.stderr)


# sign-in, cookie, CSRF ------------------------------------------------------------------------


def test_sign_in_sets_a_strict_http_only_cookie_and_answers_the_user(loketd):
    api = start(loketd)
    user_add(api, "agent1", "agent", "--organisation", "gemeente", "--extension", "201")
    b = Browser(api)
    r = b.sign_in("agent1")
    assert r.status == 200, r
    sc = r.headers["Set-Cookie"]
    parts = [p.strip() for p in sc.split(";")]
    assert "HttpOnly" in parts and "SameSite=Strict" in parts and "Path=/" in parts
    assert "Secure" not in parts  # plain HTTP without secure_cookies
    assert len(b.cookie) >= 40
    assert r.headers.get("Cache-Control") == "no-store"
    assert r.json["user"] == {"name": "agent1", "role": "agent", "departments": [],
                              "organisation": "gemeente", "extension": "201"}
    assert r.json["idle_timeout"] == 1800 and len(r.json["csrf"]) >= 40
    # The register keeps the id's hash only.
    db = api.d.db()
    try:
        rows = db.execute("SELECT hash, user_name FROM sessions").fetchall()
    finally:
        db.close()
    assert len(rows) == 1 and rows[0][1] == "agent1" and rows[0][0] != b.cookie
    g = b.call("GET", "/api/v1/session")
    assert g.status == 200 and g.json["user"]["name"] == "agent1"
    assert g.json["csrf"] == b.csrf


def test_secure_cookies_adds_secure(loketd):
    api = start(loketd, secure_cookies="yes")
    user_add(api, "agent1", "agent")
    r = Browser(api).sign_in("agent1")
    assert r.status == 200
    assert "Secure" in [p.strip() for p in r.headers["Set-Cookie"].split(";")]


def test_cookie_reads_and_writes_as_the_user_with_csrf(loketd):
    api = start(loketd)
    user_add(api, "agent1", "agent")
    b = Browser(api)
    assert b.sign_in("agent1").status == 200
    created = api.create(subject="via token")
    r = b.call("GET", "/api/v1/contacts/%d" % created["id"])
    assert r.status == 200 and r.json["subject"] == "via token"
    subject = unique("cookie")
    # Without the CSRF header, or with a wrong one: 403 and nothing stored.
    r = b.call("POST", "/api/v1/contacts", {"channel": "phone", "subject": subject}, csrf=False)
    assert r.status == 403 and "X-CSRF-Token" in r.json["detail"], r
    r = b.call("POST", "/api/v1/contacts", {"channel": "phone", "subject": subject},
               csrf="x" * len(b.csrf))
    assert r.status == 403, r
    listed = api.ok("GET", "/api/v1/contacts?limit=100")
    assert subject not in [c["subject"] for c in listed["items"]]
    # With it: stored, and the contact names the user.
    r = b.call("POST", "/api/v1/contacts", {"channel": "phone", "subject": subject})
    assert r.status == 201, r
    assert r.json["created_by"] == "agent1"


def test_session_role_limits_like_a_token(loketd):
    api = start(loketd)
    user_add(api, "bo1", "backoffice", "--department", "omgeving")
    b = Browser(api)
    assert b.sign_in("bo1").status == 200
    # An admin route: 403 for backoffice.
    r = b.call("GET", "/api/v1/tasks")
    assert r.status in (200, 403)
    c = api.create(subject=unique("dep"), department="burgerzaken")
    r = b.call("GET", "/api/v1/contacts/%d" % c["id"])
    assert r.status in (403, 404), r


def test_bearer_token_wins_over_the_cookie_and_needs_no_csrf(loketd):
    api = start(loketd)
    user_add(api, "agent1", "agent")
    b = Browser(api)
    assert b.sign_in("agent1").status == 200
    r = api.call("POST", "/api/v1/contacts", {"channel": "phone", "subject": "tok"},
                 headers={"Authorization": "Bearer " + api.agent,
                          "Cookie": "loket_session=" + b.cookie})
    assert r.status == 201 and r.json["created_by"] == "t-agent", r


def test_sign_out_ends_the_session(loketd):
    api = start(loketd)
    user_add(api, "agent1", "agent")
    b = Browser(api)
    assert b.sign_in("agent1").status == 200
    assert b.call("DELETE", "/api/v1/session", csrf=False).status == 403
    r = b.call("DELETE", "/api/v1/session")
    assert r.status == 204, r
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    r = b.call("GET", "/api/v1/contacts")
    assert r.status == 401, r
    assert b.call("GET", "/api/v1/session").status == 401


def test_session_ends_after_the_idle_time(loketd):
    api = start(loketd, session_idle="2s")
    user_add(api, "agent1", "agent")
    b = Browser(api)
    r = b.sign_in("agent1")
    assert r.status == 200 and r.json["idle_timeout"] == 2
    # Used within the idle time, it lives on past it.
    for _ in range(4):
        time.sleep(0.8)
        assert b.call("GET", "/api/v1/contacts").status == 200
    time.sleep(3)
    assert b.call("GET", "/api/v1/contacts").status == 401


def test_disabling_a_user_ends_its_live_session(loketd):
    api = start(loketd)
    user_add(api, "agent1", "agent")
    b = Browser(api)
    assert b.sign_in("agent1").status == 200
    assert b.call("GET", "/api/v1/contacts").status == 200
    assert ctl(api, "user", "disable", "agent1").returncode == 0
    assert b.call("GET", "/api/v1/contacts").status == 401
    # And it cannot sign in again: the same answer as a wrong password.
    r = Browser(api).sign_in("agent1")
    assert r.status == 401


def test_wrong_password_unknown_user_and_disabled_user_answer_the_same(loketd):
    api = start(loketd)
    user_add(api, "agent1", "agent")
    user_add(api, "gone", "agent")
    ctl(api, "user", "disable", "gone")
    answers = []
    for name, pw in [("agent1", "wrong password!"), ("nobody", PASSWORD), ("gone", PASSWORD)]:
        t0 = time.monotonic()
        r = Browser(api).sign_in(name, pw)
        answers.append((r.status, r.content_type, r.body, time.monotonic() - t0))
    assert {a[0] for a in answers} == {401}
    assert answers[0][1:3] == answers[1][1:3] == answers[2][1:3]
    assert b"agent1" not in answers[0][2] and b"nobody" not in answers[1][2]
    # An unknown user costs a hash check too (a dummy): no quick "no such user".
    assert answers[1][3] > 0.3 * answers[0][3], answers
    log = api.d.log()
    assert "wrong password!" not in log


def test_throttle_per_user_answers_429_even_for_the_right_password(loketd):
    api = start(loketd)
    user_add(api, "agent1", "agent")
    for i in range(5):
        assert Browser(api).sign_in("agent1", "not it %d!!" % i).status == 401
    r = Browser(api).sign_in("agent1")
    assert r.status == 429, r
    assert int(r.headers["Retry-After"]) > 0
    assert r.content_type == "application/problem+json"
    # An unknown name is throttled the same way, with the same answer.
    for i in range(5):
        assert Browser(api).sign_in("ghost", "not it %d!!" % i).status == 401
    r2 = Browser(api).sign_in("ghost", PASSWORD)
    assert r2.status == 429 and r2.body == r.body
    # Another user from the same address still signs in (under the address limit).
    user_add(api, "agent2", "agent")
    assert Browser(api).sign_in("agent2").status == 200


def test_throttle_per_address(loketd):
    api = start(loketd, signin_address_failures="4")
    user_add(api, "agent1", "agent")
    for i in range(4):
        assert Browser(api).sign_in("someone%d" % i, "not it at all").status == 401
    r = Browser(api).sign_in("agent1")
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0, r


def test_throttle_counts_only_from_a_trusted_proxy_forwarded_address(loketd):
    api = start(loketd, signin_address_failures="3", trusted_proxies="127.0.0.1")
    user_add(api, "agent1", "agent")
    for i in range(3):
        r = Browser(api).sign_in("x%d" % i, "not it at all",
                                 headers={"X-Forwarded-For": "192.0.2.7"})
        assert r.status == 401
    assert Browser(api).sign_in("agent1", headers={"X-Forwarded-For": "192.0.2.7"}).status == 429
    assert Browser(api).sign_in("agent1", headers={"X-Forwarded-For": "192.0.2.8"}).status == 200


def test_sign_in_and_failures_are_audited_without_the_password(loketd):
    api = start(loketd)
    user_add(api, "agent1", "agent")
    assert Browser(api).sign_in("agent1", "bad password here").status == 401
    assert Browser(api).sign_in("agent1").status == 200

    def rows():
        db = api.d.db()
        try:
            return db.execute("SELECT token, action, object FROM audit"
                              " WHERE action LIKE 'session.%' ORDER BY id").fetchall()
        finally:
            db.close()

    got = wait_for(lambda: rows() if len(rows()) >= 2 else None, 5 * SLOW)
    assert [tuple(r) for r in got][:2] == [("agent1", "session.signin_failed", "session"),
                                           ("agent1", "session.signin", "session")]
    assert "bad password here" not in json.dumps([list(r) for r in got])


def test_sign_in_body_errors_are_clear(loketd):
    api = start(loketd)
    r = api.call("POST", "/api/v1/session", "not json, my secret password")
    assert r.status == 400 and "username" in r.json["detail"]
    assert "secret" not in r.json["detail"]
    r = api.call("POST", "/api/v1/session", b"x", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = api.call("POST", "/api/v1/session", {"username": 5, "password": "x"})
    assert r.status == 422 and "username" in r.json["detail"]
    # No credentials: a 401 that says what is missing.
    r = api.call("POST", "/api/v1/session", {"username": "a"})
    assert r.status == 401 and "password" in r.json["detail"]


# the event stream of a session ---------------------------------------------------------------


def test_an_event_stream_ends_when_its_session_or_token_does(loketd):
    """A stream opened with the cookie lives while its session does: signed out (or the user
    disabled) it ends at the next keep-alive, not when the tab is closed. Likewise a stream
    of a token that is revoked."""
    from sse_client import Stream
    api = start(loketd, stream_keepalive="300ms")
    user_add(api, "agent1", "agent")
    user_add(api, "agent2", "agent")
    streams = []
    try:
        for name in ("agent1", "agent2"):
            b = Browser(api)
            assert b.sign_in(name).status == 200
            s = Stream(api.d.host, api.d.port, headers={"Cookie": "loket_session=" + b.cookie})
            assert s.status == 200, s.raw
            streams.append((b, s))
        (b1, s1), (b2, s2) = streams
        token = api.token("stream-token", "agent")
        s3 = Stream(api.d.host, api.d.port, token=token)
        assert s3.status == 200, s3.raw
        # All three live through a few keep-alives.
        time.sleep(1)
        assert not s1.closed and not s2.closed and not s3.closed
        assert b1.call("DELETE", "/api/v1/session").status == 204
        assert s1.wait_closed(5 * SLOW), "the signed-out session's stream still runs"
        r = ctl(api, "user", "disable", "agent2")
        assert r.returncode == 0, r.stderr
        assert s2.wait_closed(5 * SLOW), "the disabled user's stream still runs"
        r = ctl(api, "token", "revoke", "stream-token")
        assert r.returncode == 0, r.stderr
        assert s3.wait_closed(5 * SLOW), "the revoked token's stream still runs"
        # A reconnect is refused.
        s4 = Stream(api.d.host, api.d.port, headers={"Cookie": "loket_session=" + b1.cookie})
        assert s4.status == 401
        s4.close()
    finally:
        for _, s in streams:
            s.close()
