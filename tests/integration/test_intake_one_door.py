"""One door into the register (docs/architecture.md, "One door for new contacts"): a
contact posted to POST /api/v1/contacts and the same contact submitted by a channel plugin
through the ABI (plugins/hello's POST /hello/contact) meet the same checks, the same party
matching and the same rules, because both go through register_submit."""

import urllib.parse

import pytest

from api_fixtures import ORG_CONF, Api, assert_problem, finish_api, unique, unique_email
from conftest import Loketd
from test_rules_support import rules_section

RULE = """\
loket.on("contact", function(c)
  local text = ((c.subject or "") .. " " .. (c.body or "")):lower()
  if text:find("uithuiszetting", 1, true) then
    c.priority = "urgent"
    c.tags = { "sociaal" }
    c:escalate{ to = "sociale_dienst", reason = "dringende sociale vraag" }
  end
end)
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one-door")
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "10-dringend.lua").write_text(RULE)
    (tmp / "d").mkdir()
    d = Loketd(tmp / "d", plugins=["hello"],
               extra=ORG_CONF + rules_section(str(rules), catalogue=None))
    d.start()
    a = Api(d)
    yield a
    finish_api(a)


def intake(api):
    return api.token("door-intake", "intake")


def flat(fields):
    """The API body's shape as the channel's fields: party.email for party: {email}."""
    out = {}
    for k, v in fields.items():
        if k == "party":
            out.update(("party." + pk, pv) for pk, pv in v.items())
        else:
            out[k] = v
    return out


def by_api(api, fields):
    return api.call("POST", "/api/v1/contacts", fields, token=api.admin)


def by_channel(api, fields):
    """The same contact as a channel plugin submits it (contact_new, contact_set, submit)."""
    return api.call("POST", "/hello/contact?" + urllib.parse.urlencode(flat(fields)), b"",
                    token=api.admin)


BAD = [
    ({"channel": "web", "party": {"phone": "123"}}, "party.phone"),
    ({"channel": "web", "party": {"email": "geen adres"}}, "party.email"),
    ({"channel": "web", "party": {"rrn": "85.01.01-001.00"}}, "party.rrn"),
    ({"channel": "web", "department": "nergens"}, "department"),
    ({"channel": "web", "language": "nl_BE!"}, "language"),
    ({"channel": "fax", "subject": "x"}, "channel"),
    ({"channel": "web", "subject": "x" * 1001}, "subject"),
]


@pytest.mark.parametrize("fields,word", BAD, ids=[w for _, w in BAD])
def test_the_api_and_a_channel_get_the_same_validation_error(api, fields, word):
    a, c = by_api(api, fields), by_channel(api, fields)
    pa, pc = assert_problem(a, 422, word), assert_problem(c, 422, word)
    assert (a.status, pa["detail"]) == (c.status, pc["detail"])


def test_the_api_and_a_channel_match_the_same_party_and_flag_the_same_conflict(api):
    n = int(unique("")[-6:], 16) % 1000000
    email, phone = unique_email("deur"), "+32 470 %02d %02d %02d" % (n // 10000, n // 100 % 100,
                                                                     n % 100)
    by_email = api.create(channel="email", party={"email": email})["party_id"]
    by_phone = api.create(channel="phone", party={"phone": phone})["party_id"]
    fields = {"channel": "web", "subject": "adres", "party": {"email": email, "phone": phone}}
    a, c = by_api(api, fields), by_channel(api, fields)
    assert a.status == 201, a
    assert c.status == 201, c
    from_api, from_channel = api.contact(a.json["id"]), api.contact(c.json["id"])
    conflict = {"matched_by": "email", "other_parties": [by_phone], "unknown": []}
    for got in (from_api, from_channel):
        assert got["party_id"] == by_email, got
        assert got["party_conflict"] == conflict, got
        assert any(h["action"] == "party_conflict" for h in got["history"]), got["history"]
    # The channel hears the contact as the API shows it, not a copy made on the side.
    assert c.json["contact"]["party_conflict"] == conflict
    assert c.json["contact"]["id"] == c.json["id"] == from_channel["id"]
    assert c.json["duplicate"] is False and c.json["threaded"] is False
    # Only the actor differs: a token's name, or the plugin's.
    assert from_api["created_by"] == "t-admin" and from_channel["created_by"] == "hello"


def test_the_api_and_a_channel_get_the_same_rule_decisions(api):
    fields = {"channel": "counter", "subject": "dreigende uithuiszetting " + unique(),
              "department": "burgerzaken", "party": {"email": unique_email("huur")}}
    a, c = by_api(api, fields), by_channel(api, fields)
    assert a.status == 201, a
    assert c.status == 201, c
    got = [api.contact(a.json["id"]), api.contact(c.json["id"])]
    decided = [(x["status"], x["line"], x["priority"], x["tags"], x["department"],
                x["organisation"], [(t["department"], t["reason"]) for t in x["tasks"]],
                [h["action"] for h in x["history"]]) for x in got]
    assert decided[0] == decided[1], decided
    assert decided[0][:6] == ("escalated", 2, "urgent", ["sociaal"], "sociale_dienst", "ocmw")
    assert decided[0][6] == [("sociale_dienst", "dringende sociale vraag")]
    # A contact the rule leaves alone is left alone on both paths.
    calm = {"channel": "web", "subject": "openingsuren"}
    a, c = by_api(api, calm), by_channel(api, calm)
    assert (a.json["status"], a.json["priority"]) == ("open", "normal"), a
    assert (c.json["contact"]["status"], c.json["contact"]["priority"]) == ("open", "normal")


def test_an_intake_token_still_sees_only_id_reference_and_status(api):
    r = api.call("POST", "/api/v1/contacts",
                 {"channel": "web", "subject": "x", "party": {"email": unique_email()}},
                 token=intake(api))
    assert r.status == 201, r
    assert set(r.json) == {"id", "reference", "status"}, r.json
    assert r.headers.get("Location") == "/api/v1/contacts/%d" % r.json["id"]


def test_a_channel_route_for_intake_refuses_staff_tokens(api):
    r = api.call("POST", "/hello/contact?channel=web&subject=x", b"", token=api.agent)
    assert r.status == 403, r
    r = api.call("POST", "/hello/contact?subject=x", b"", token=intake(api))
    assert_problem(r, 400, "channel")
