"""The admin's endpoints (docs/api.md, "Users", "Tokens", "Audit log"): staff users and API
tokens managed over HTTP with the same rules as loketctl, and the audit trail read back by
the data-protection officer, filtered by person or by staff member. Admin only. Runs on both
drivers (the revoke seen on a second node: test_pgsql_admin_api.py).
"""
import time

import pytest

from api_fixtures import assert_problem, module_api, unique
from test_sessions import Browser

ENDPOINTS = [
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"login": "x-agent-try", "role": "agent"}),
    ("PATCH", "/api/v1/users/nobody", {"disabled": True}),
    ("POST", "/api/v1/users/nobody/password", {}),
    ("GET", "/api/v1/tokens", None),
    ("POST", "/api/v1/tokens", {"name": "x-agent-try", "role": "admin"}),
    ("DELETE", "/api/v1/tokens/t-admin", None),
    ("GET", "/api/v1/audit", None),
    ("GET", "/api/v1/audit?party=1", None),
]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory, http={"session_idle": "30m"})


def add_user(api, role="agent", **fields):
    login = unique("u-")
    body = {"login": login, "role": role}
    body.update(fields)
    doc = api.ok("POST", "/api/v1/users", body, status=201)
    return login, doc


def audit(api, token=None, **params):
    q = "&".join("%s=%s" % kv for kv in params.items())
    return api.ok("GET", "/api/v1/audit" + ("?" + q if q else ""), token=token)


def test_admin_adds_a_user_who_then_signs_in(api):
    login, doc = add_user(api, "backoffice", departments=["burgerzaken"])
    assert doc["user"]["login"] == login
    assert doc["user"]["role"] == "backoffice"
    assert doc["user"]["departments"] == ["burgerzaken"]
    password = doc["password"]
    assert len(password) >= 10
    assert "hash" not in doc["user"]
    b = Browser(api)
    r = b.sign_in(login, password)
    assert r.status == 200, r
    assert b.call("GET", "/api/v1/contacts").status == 200
    listed = api.ok("GET", "/api/v1/users")["items"]
    mine = [u for u in listed if u["login"] == login]
    assert len(mine) == 1 and mine[0]["disabled"] is False
    assert all("hash" not in u and "password" not in u for u in listed)
    # The password was answered once: the list never holds it.
    assert password not in api.call("GET", "/api/v1/users", token=api.admin).body.decode()
    assert password not in api.d.log()


def test_a_given_password_is_used_and_not_answered(api):
    login, doc = add_user(api, password="een goed wachtwoord")
    assert "password" not in doc
    assert Browser(api).sign_in(login, "een goed wachtwoord").status == 200


def test_user_add_refuses_what_loketctl_refuses(api):
    cases = [
        ({"login": "bad name!", "role": "agent"}, 422, "user name"),
        ({"login": unique("u-"), "role": "intake"}, 422, "agent, backoffice or admin"),
        ({"login": unique("u-"), "role": "backoffice"}, 422, "at least one --department"),
        ({"login": unique("u-"), "role": "agent", "departments": ["nergens"]}, 422, "nergens"),
        ({"login": unique("u-"), "role": "agent", "organisation": "nergens"}, 422, "nergens"),
        ({"login": unique("u-"), "role": "agent", "password": "kort"}, 422, "too short"),
        ({"role": "agent"}, 422, "login"),
        ({"login": unique("u-"), "role": "agent", "wat": 1}, 422, "wat"),
    ]
    for body, status, words in cases:
        r = api.call("POST", "/api/v1/users", body, token=api.admin)
        assert_problem(r, status, words)
    login, _ = add_user(api)
    r = api.call("POST", "/api/v1/users", {"login": login, "role": "agent"}, token=api.admin)
    assert_problem(r, 409, login)


def test_an_agent_gets_403_on_every_admin_endpoint(api):
    for method, path, body in ENDPOINTS:
        r = api.call(method, path, body, token=api.agent)
        assert_problem(r, 403, "agent")
    bo = api.token("t-bo-admin-api", "backoffice", departments=["burgerzaken"])
    for method, path, body in ENDPOINTS:
        assert api.call(method, path, body, token=bo).status == 403
    # A staff agent's session too.
    login, doc = add_user(api)
    b = Browser(api)
    assert b.sign_in(login, doc["password"]).status == 200
    for method, path, body in ENDPOINTS:
        assert b.call(method, path, body).status == 403


def test_a_disabled_users_session_stops_working(api):
    login, doc = add_user(api)
    b = Browser(api)
    assert b.sign_in(login, doc["password"]).status == 200
    assert b.call("GET", "/api/v1/contacts").status == 200
    r = api.ok("PATCH", "/api/v1/users/" + login, {"disabled": True})
    assert r["sessions_ended"] == 1
    assert b.call("GET", "/api/v1/contacts").status == 401
    assert Browser(api).sign_in(login, doc["password"]).status == 401
    assert [u["disabled"] for u in api.ok("GET", "/api/v1/users")["items"]
            if u["login"] == login] == [True]
    api.ok("PATCH", "/api/v1/users/" + login, {"disabled": False})
    assert Browser(api).sign_in(login, doc["password"]).status == 200


def test_patch_changes_role_and_departments_and_checks_them_together(api):
    login, doc = add_user(api)
    r = api.call("PATCH", "/api/v1/users/" + login, {"role": "backoffice"}, token=api.admin)
    assert_problem(r, 422, "at least one --department")
    api.ok("PATCH", "/api/v1/users/" + login,
           {"role": "backoffice", "departments": ["omgeving"]})
    u = [u for u in api.ok("GET", "/api/v1/users")["items"] if u["login"] == login][0]
    assert (u["role"], u["departments"]) == ("backoffice", ["omgeving"])
    b = Browser(api)
    assert b.sign_in(login, doc["password"]).json["user"]["role"] == "backoffice"
    assert_problem(api.call("PATCH", "/api/v1/users/nobody-here", {"disabled": True},
                            token=api.admin), 404, "nobody-here")
    assert_problem(api.call("PATCH", "/api/v1/users/" + login, {"disabled": "ja"},
                            token=api.admin), 422, "disabled")


def test_password_reset_ends_old_sessions_and_the_new_password_works(api):
    login, doc = add_user(api)
    old = Browser(api)
    assert old.sign_in(login, doc["password"]).status == 200
    r = api.ok("POST", "/api/v1/users/%s/password" % login)
    new_password = r["password"]
    assert new_password != doc["password"] and r["sessions_ended"] == 1
    assert old.call("GET", "/api/v1/contacts").status == 401
    assert Browser(api).sign_in(login, doc["password"]).status == 401
    assert Browser(api).sign_in(login, new_password).status == 200
    r = api.ok("POST", "/api/v1/users/%s/password" % login, {"password": "nog een wachtwoord"})
    assert "password" not in r
    assert Browser(api).sign_in(login, "nog een wachtwoord").status == 200
    assert_problem(api.call("POST", "/api/v1/users/%s/password" % login, {"password": "kort"},
                            token=api.admin), 422, "too short")


def test_user_writes_are_audited_without_the_password(api):
    login, doc = add_user(api)
    api.ok("PATCH", "/api/v1/users/" + login, {"disabled": True})
    api.ok("POST", "/api/v1/users/%s/password" % login)
    time.sleep(0.2)
    rows = audit(api, actor="t-admin", limit=50)["items"]
    mine = [(r["action"], r["object"]) for r in rows if r["object"] == "user:" + login]
    assert mine == [("user.password", "user:" + login), ("user.update", "user:" + login),
                    ("user.add", "user:" + login)]
    assert doc["password"] not in str(rows)


def test_a_token_added_is_shown_once_works_and_revoked_gets_401(api):
    name = unique("tk-")
    doc = api.ok("POST", "/api/v1/tokens", {"name": name, "role": "agent"}, status=201)
    token = doc["token"]
    assert token.startswith("lkt_") and "hash" not in doc
    assert api.call("GET", "/api/v1/contacts", token=token).status == 200
    listed = api.ok("GET", "/api/v1/tokens")["items"]
    row = [t for t in listed if t["name"] == name][0]
    assert row["role"] == "agent" and row["revoked_at"] is None
    assert token not in str(listed) and all("hash" not in t for t in listed)
    assert token not in api.d.log()
    assert api.ok("DELETE", "/api/v1/tokens/" + name)["revoked"] == name
    assert_problem(api.call("GET", "/api/v1/contacts", token=token), 401, "revoked")
    row = [t for t in api.ok("GET", "/api/v1/tokens")["items"] if t["name"] == name][0]
    assert row["revoked_at"] is not None
    assert_problem(api.call("DELETE", "/api/v1/tokens/" + name, token=api.admin), 404, name)
    time.sleep(0.2)
    actions = [(r["action"], r["object"]) for r in audit(api, actor="t-admin")["items"]
               if r["object"] == "token:" + name]
    assert actions == [("token.revoke", "token:" + name), ("token.add", "token:" + name)]


def test_token_add_refuses_what_loketctl_refuses_and_an_admin_keeps_its_own_token(api):
    assert_problem(api.call("POST", "/api/v1/tokens", {"name": "x y", "role": "agent"},
                            token=api.admin), 422, "token name")
    assert_problem(api.call("POST", "/api/v1/tokens", {"name": unique("tk-"), "role": "baas"},
                            token=api.admin), 422, "role")
    assert_problem(api.call("POST", "/api/v1/tokens", {"name": unique("tk-"), "role": "agent",
                                                       "departments": ["burgerzaken"]},
                            token=api.admin), 422, "backoffice")
    assert_problem(api.call("POST", "/api/v1/tokens", {"name": "t-admin", "role": "agent"},
                            token=api.admin), 409, "t-admin")
    assert_problem(api.call("DELETE", "/api/v1/tokens/t-admin", token=api.admin), 409,
                   "this request is made with")
    assert api.call("GET", "/api/v1/tokens", token=api.admin).status == 200


def test_the_audit_log_shows_who_read_one_citizens_contacts(api):
    reader = "t-reader-" + unique("r")[-6:]
    x = api.token(reader, "agent")
    other = api.token("t-other-reader", "agent")
    mine = api.create(party={"name": "Els Peeters", "email": unique("els") + "@example.be"})
    theirs = api.create(party={"name": "Jo Maes", "email": unique("jo") + "@example.be"})
    p, q = mine["party_id"], theirs["party_id"]
    api.ok("GET", "/api/v1/contacts/%d" % mine["id"], token=x)
    api.ok("GET", "/api/v1/parties/%d" % p, token=other)
    api.ok("GET", "/api/v1/contacts/%d" % theirs["id"], token=x)
    time.sleep(0.2)
    rows = audit(api, party=p)["items"]
    got = [(r["actor"], r["action"], r["object"]) for r in rows]
    assert (reader, "contact.read", "contact:%d" % mine["id"]) in got
    assert ("t-other-reader", "party.read", "party:%d" % p) in got
    assert all(r["object"] in ("contact:%d" % mine["id"], "party:%d" % p) for r in rows), got
    assert "contact:%d" % theirs["id"] not in str(got)
    assert all("at" in r and r["at"].endswith("Z") for r in rows)
    only_x = audit(api, party=p, actor=reader)["items"]
    assert [(r["actor"], r["action"]) for r in only_x] == [(reader, "contact.read")]
    by_x = audit(api, actor=reader)["items"]
    assert {r["object"] for r in by_x} == {"contact:%d" % mine["id"], "contact:%d" % theirs["id"]}
    assert [r["object"] for r in audit(api, contact=theirs["id"], action="contact.read")
            ["items"]] == ["contact:%d" % theirs["id"]]
    assert audit(api, party=q, actor="t-other-reader")["items"] == []


def test_the_audit_log_pages_newest_first_with_a_cursor(api):
    reader = "t-pager"
    x = api.token(reader, "agent")
    c = api.create()
    for _ in range(5):
        api.ok("GET", "/api/v1/contacts/%d" % c["id"], token=x)
    time.sleep(0.2)
    first = audit(api, actor=reader, limit=2)
    assert len(first["items"]) == 2 and first["next_cursor"]
    ids = [r["id"] for r in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = audit(api, actor=reader, limit=2, cursor=cursor)
        ids += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)
    since = audit(api, actor=reader, **{"from": "2000-01-01", "to": "2999-01-01"})["items"]
    assert len(since) == 5
    assert audit(api, actor=reader, to="2000-01-01")["items"] == []


@pytest.mark.parametrize("query, param", [
    ("party=abc", "party"), ("party=0", "party"), ("contact=-3", "contact"),
    ("actor=", "actor"), ("actor=a%20b", "actor"), ("action=DROP%20TABLE", "action"),
    ("from=gisteren", "from"), ("to=13-13-2026", "to"), ("limit=0", "limit"),
    ("limit=9999", "limit"), ("cursor=xyz", "cursor"),
    ("from=2026-02-01&to=2026-01-01", "to"),
])
def test_bad_audit_parameters_give_400_naming_the_parameter(api, query, param):
    r = api.call("GET", "/api/v1/audit?" + query, token=api.admin)
    assert_problem(r, 400, param)
