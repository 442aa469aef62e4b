"""The admin API on several nodes sharing one PostgreSQL register (docs/api.md, "Tokens").

A token revoked with DELETE /api/v1/tokens/{name} on node A is refused at once there and
within about a second on node B, which re-reads the tokens from the register; a user
disabled through the API on A loses the session on B too.
"""
import time

import pytest

from api_fixtures import assert_problem, unique
from test_pgsql_sessions import nodes, on, refused_within  # noqa: F401 (a fixture)
from test_sessions import Browser

pytestmark = pytest.mark.pgsql_only("nodes sharing one PostgreSQL register")


def refused_token_within(api, token, seconds):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if api.call("GET", "/api/v1/contacts", token=token).status == 401:
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def test_a_token_added_on_one_node_works_on_the_other_and_its_revoke_counts_there(nodes):
    a, b = nodes
    name = unique("tk-")
    token = a.ok("POST", "/api/v1/tokens", {"name": name, "role": "agent"}, status=201)["token"]
    # Node B learns of the new token from the register within its re-read.
    t0 = time.monotonic()
    while b.call("GET", "/api/v1/contacts", token=token).status != 200:
        assert time.monotonic() - t0 < 5, "node B never accepted the new token"
        time.sleep(0.1)
    a.ok("DELETE", "/api/v1/tokens/" + name, token=a.admin)
    assert_problem(a.call("GET", "/api/v1/contacts", token=token), 401, "revoked")
    waited = refused_token_within(b, token, 5)
    assert waited is not None and waited < 3, "node B still accepts the revoked token"


def test_a_user_disabled_through_the_api_on_one_node_is_refused_on_the_other(nodes):
    a, b = nodes
    login = unique("u-")
    password = a.ok("POST", "/api/v1/users", {"login": login, "role": "agent"},
                    status=201)["password"]
    br = Browser(a)
    assert br.sign_in(login, password).status == 200
    other = on(b, br)
    assert other.call("GET", "/api/v1/contacts").status == 200
    a.ok("PATCH", "/api/v1/users/" + login, {"disabled": True}, token=a.admin)
    waited = refused_within(other, 5)
    assert waited is not None and waited < 3
