"""Sessions on several nodes sharing one PostgreSQL register (docs/api.md, "Sessions").

A session made on node A works on node B; signing out on A, or disabling the user there,
refuses the cookie on B within a second or two; failed sign-ins on A and B count together.
"""
import re
import time

import pytest

from api_fixtures import ORG_CONF, Api
from conftest import Loketd
from test_sessions import PASSWORD, Browser, ctl, user_add

pytestmark = pytest.mark.pgsql_only("nodes sharing one PostgreSQL register")


@pytest.fixture
def nodes(tmp_path):
    made = []
    try:
        (tmp_path / "a").mkdir()
        a = Loketd(tmp_path / "a", extra=ORG_CONF)
        a.start()
        made.append(Api(a))
        conninfo = re.findall(r"^conninfo = (.*)$", a.config_text, re.M)[-1]
        (tmp_path / "b").mkdir()
        b = Loketd(tmp_path / "b", extra=ORG_CONF +
                   "\n[storage]\ndriver = pgsql\nconninfo = %s\n" % conninfo)
        b.start()
        made.append(Api(b))
        yield made[0], made[1]
    finally:
        codes = []
        for api in reversed(made):
            codes.append(api.d.stop())
            api.d.close()
        assert set(codes) <= {0}, codes


def refused_within(browser, seconds):
    """How long until the cookie is refused (401), or None after seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if browser.call("GET", "/api/v1/contacts").status == 401:
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def on(api, browser):
    """The same browser (cookie, csrf) talking to another node."""
    other = Browser(api)
    other.cookie, other.csrf = browser.cookie, browser.csrf
    return other


def test_a_session_made_on_one_node_works_on_another(nodes):
    a, b = nodes
    user_add(a, "agent1", "agent")
    on_a = Browser(a)
    assert on_a.sign_in("agent1").status == 200
    on_b = on(b, on_a)
    assert on_b.call("GET", "/api/v1/session").json["user"]["name"] == "agent1"
    r = on_b.call("POST", "/api/v1/contacts", {"channel": "phone", "subject": "op B"})
    assert r.status == 201 and r.json["created_by"] == "agent1", r


def test_sign_out_on_one_node_ends_the_session_on_the_other(nodes):
    a, b = nodes
    user_add(a, "agent1", "agent")
    on_a = Browser(a)
    assert on_a.sign_in("agent1").status == 200
    on_b = on(b, on_a)
    assert on_b.call("GET", "/api/v1/contacts").status == 200
    assert on_a.call("DELETE", "/api/v1/session").status == 204
    took = refused_within(on_b, 3)
    assert took is not None and took <= 2, took


def test_disabling_on_one_node_ends_the_session_on_the_other(nodes):
    a, b = nodes
    user_add(a, "agent1", "agent")
    on_a = Browser(a)
    assert on_a.sign_in("agent1").status == 200
    on_b = on(b, on_a)
    assert on_b.call("GET", "/api/v1/contacts").status == 200
    assert ctl(a, "user", "disable", "agent1").returncode == 0
    took = refused_within(on_b, 3)
    assert took is not None and took <= 2, took


def test_failed_sign_ins_count_across_nodes(nodes):
    a, b = nodes
    user_add(a, "agent1", "agent")
    for i in range(5):
        node = a if i % 2 == 0 else b
        assert Browser(node).sign_in("agent1", "wrong wrong %d" % i).status == 401
    assert Browser(b).sign_in("agent1", PASSWORD).status == 429
    assert Browser(a).sign_in("agent1", PASSWORD).status == 429
