"""The admin's rules over HTTP (docs/api.md, "Rules"): the rules folder as loaded with its
handlers and their runs, a sample contact tried out with the engine of `loketctl rules test`
(the same lines, nothing stored), a replay over a period as `loketctl rules replay` prints it,
and a reload that answers 422 with file:line when a rule file is broken while the old rules
keep deciding. Admin only. Runs on both drivers.
"""
import datetime
import json
import re

from test_rules_support import Client, DEFAULT_RULES, example_units, rules_section

SAMPLE = {"channel": "email", "subject": "Vraag over mijn omgevingsvergunning",
          "body": "Hoe ver staat mijn aanvraag?",
          "party": {"name": "An Peeters", "email": "an.peeters@example.be"}}

TAG_RULE = """-- tags every contact with the version of the rules
loket.on("contact", function(c)
  c:tag("%s")
end)
"""

BROKEN = """-- a syntax error on line 3
loket.on("contact", function(c)
  local x = = 1
end)
"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_admin_tries_a_contact_and_sees_the_escalation_as_loketctl_prints_it(loketd, tmp_path):
    d = loketd(extra=rules_section(DEFAULT_RULES) + example_units())
    client = Client(d)
    body = dict(SAMPLE, at="2026-12-24T16:55:00+01:00")
    status, doc, _, raw = client.call("POST", "/api/v1/rules/test", body, token=client.admin)
    assert status == 200, raw[:500]
    esc = [x for x in doc["decisions"] if x["text"].startswith("escalate to omgeving")]
    assert esc and esc[0]["rule"] == "10-routing.lua:3", doc["decisions"]
    assert (esc[0]["file"], esc[0]["line"]) == ("10-routing.lua", 3), esc
    assert doc["contact"]["status"] == "escalated" and doc["contact"]["line"] == 2, doc
    assert doc["contact"]["department"] == "omgeving"
    assert doc["then"]["event"] == "escalated"
    assert [x["rule"] for x in doc["then"]["decisions"]] == ["40-acknowledge.lua:23"], doc["then"]

    # The same engine as loketctl rules test: the same lines, after its header line.
    sample = tmp_path / "mail.json"
    write(sample, json.dumps(SAMPLE))
    r = d.ctl("rules", "test", DEFAULT_RULES, str(sample), "--at", "2026-12-24 16:55")
    assert r.returncode == 0, r.stdout + r.stderr
    assert doc["lines"] == r.stdout.splitlines()[1:], (doc["lines"], r.stdout)

    # Nothing stored, nothing counted in the rules' runs.
    status, listed, _, _ = client.call("GET", "/api/v1/contacts", token=client.admin)
    assert status == 200 and listed["items"] == [], listed
    status, rules, _, _ = client.call("GET", "/api/v1/rules", token=client.admin)
    assert all(h["runs"] == 0 for h in rules["handlers"]), rules["handlers"]


def test_bad_samples_get_422_naming_the_field(loketd):
    d = loketd(extra=rules_section(DEFAULT_RULES) + example_units())
    client = Client(d)
    cases = [(dict(SAMPLE, at="morgen"), "at"),
             (dict(SAMPLE, event="contcat"), "event"),
             (dict(SAMPLE, channel="fax"), "channel"),
             (dict(SAMPLE, rules="elders"), "rules")]
    for body, field in cases:
        status, doc, _, raw = client.call("POST", "/api/v1/rules/test", body, token=client.admin)
        assert status == 422, (body, raw[:300])
        assert field in doc["detail"], (field, doc)


def test_an_agent_gets_403_on_every_rules_endpoint(loketd):
    d = loketd(extra=rules_section(DEFAULT_RULES) + example_units())
    client = Client(d)
    for method, path, body in [("GET", "/api/v1/rules", None),
                               ("POST", "/api/v1/rules/test", SAMPLE),
                               ("POST", "/api/v1/rules/replay", {"from": "2026-01-01"}),
                               ("POST", "/api/v1/rules/reload", {})]:
        status, _, _, raw = client.call(method, path, body, token=client.agent)
        assert status == 403, (method, path, status, raw[:200])
        status, _, _, _ = client.call(method, path, body)
        assert status == 401, (method, path, status)


def test_get_rules_lists_files_handlers_and_runs(loketd):
    d = loketd(extra=rules_section(DEFAULT_RULES) + example_units())
    client = Client(d)
    client.create(channel="email", subject="Vraag over mijn omgevingsvergunning",
                  party={"name": "An Peeters", "email": "an.peeters@example.be"})
    status, doc, _, raw = client.call("GET", "/api/v1/rules", token=client.admin)
    assert status == 200, raw[:300]
    assert "10-routing.lua" in doc["files"] and "20-classify.lua" in doc["files"], doc["files"]
    routing = [h for h in doc["handlers"] if h["rule"] == "10-routing.lua:3"]
    assert routing and routing[0]["event"] == "contact", doc["handlers"]
    assert routing[0]["runs"] >= 1 and routing[0]["errors"] == 0, routing
    assert routing[0]["results"]["ok"] == routing[0]["runs"]
    assert any(h["event"] == "escalated" for h in doc["handlers"]), doc["handlers"]
    assert doc["last_reload"]["ok"] is True


def test_broken_reload_answers_422_with_file_line_and_keeps_the_old_rules(loketd, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "10-version.lua", TAG_RULE % "v1")
    d = loketd(extra=rules_section(rules, catalogue=None) + example_units())
    client = Client(d)

    write(rules / "10-version.lua", TAG_RULE % "v2")
    write(rules / "20-broken.lua", BROKEN)
    status, doc, _, raw = client.call("POST", "/api/v1/rules/reload", {}, token=client.admin)
    assert status == 422, raw[:300]
    assert "20-broken.lua:3" in doc["detail"] and "keep running" in doc["detail"], doc
    c = client.create(channel="phone", subject="na een mislukte reload")
    assert client.contact(c["id"])["tags"] == ["v1"]
    status, listed, _, _ = client.call("GET", "/api/v1/rules", token=client.admin)
    assert listed["last_reload"]["ok"] is False, listed
    assert "20-broken.lua:3" in listed["last_reload"]["error"], listed["last_reload"]
    assert listed["files"] == ["10-version.lua"], listed["files"]
    # Tried on the folder as it is now, the broken file is named too.
    status, doc, _, _ = client.call("POST", "/api/v1/rules/test",
                                    {"channel": "phone", "rules": "folder"}, token=client.admin)
    assert status == 422 and "20-broken.lua:3" in doc["detail"], doc

    write(rules / "20-broken.lua", TAG_RULE % "fixed")
    status, doc, _, raw = client.call("POST", "/api/v1/rules/reload", {}, token=client.admin)
    assert status == 200, raw[:300]
    assert doc["rules"]["files"] == ["10-version.lua", "20-broken.lua"], doc
    c = client.create(channel="phone", subject="na een goede reload")
    assert client.contact(c["id"])["tags"] == ["v2", "fixed"]
    status, listed, _, _ = client.call("GET", "/api/v1/rules", token=client.admin)
    assert listed["last_reload"]["ok"] is True, listed


def test_replay_counts_per_rule_over_a_period(loketd, tmp_path):
    empty = tmp_path / "no-rules"
    empty.mkdir()
    d = loketd(extra=rules_section(empty) + example_units())
    client = Client(d)
    party = {"name": "An Peeters", "email": "an.peeters@example.be"}
    mails = [client.create(channel="email", subject="Vraag %d over mijn omgevingsvergunning" % i,
                           party=party) for i in range(2)]
    client.create(channel="phone", subject="Wanneer wordt het afval opgehaald?")
    since = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
    # The candidate rules in the folder, not loaded yet.
    for name in ("10-routing.lua", "20-classify.lua"):
        with open("%s/%s" % (DEFAULT_RULES, name)) as f:
            write(empty / name, f.read())

    status, doc, _, raw = client.call("POST", "/api/v1/rules/replay",
                                      {"from": since, "rules": "folder"}, token=client.admin)
    assert status == 200, raw[:500]
    assert (doc["contacts"], doc["changed"], doc["failed"], doc["complete"]) == (3, 2, 0, True)
    per_rule = {x["rule"]: x for x in doc["rules"]}
    refs = sorted(m["reference"] for m in mails)
    for rule in ("10-routing.lua:3", "20-classify.lua:3"):
        assert per_rule[rule]["changed"] == 2 and sorted(per_rule[rule]["examples"]) == refs
    assert doc["lines"][0] == ("replayed 3 contacts: 2 would be stored differently, "
                               "0 rule calls would fail"), doc["lines"]
    assert any(re.match(r"^  10-routing\.lua:3 +2 changed, 0 failed", x) for x in doc["lines"])

    # The bound: one contact per request, said so; a period in the future holds none.
    status, doc, _, _ = client.call("POST", "/api/v1/rules/replay",
                                    {"from": since, "rules": "folder", "limit": 1},
                                    token=client.admin)
    assert status == 200 and doc["contacts"] == 1 and doc["complete"] is False, doc
    status, doc, _, _ = client.call("POST", "/api/v1/rules/replay",
                                    {"from": "2099-01-01", "rules": "folder"}, token=client.admin)
    assert status == 200 and doc["contacts"] == 0, doc
    # A period that ends before the contacts came in holds none of them.
    status, doc, _, _ = client.call("POST", "/api/v1/rules/replay",
                                    {"from": since, "to": since + "T12:00:00Z",
                                     "rules": "folder"}, token=client.admin)
    assert status == 200 and doc["contacts"] == 0, doc
    for body, field in [({}, "from"), ({"from": "vorige week"}, "from"),
                        ({"from": since, "to": "2000-01-01"}, "to"),
                        ({"from": since, "limit": 0}, "limit")]:
        status, doc, _, raw = client.call("POST", "/api/v1/rules/replay", body,
                                          token=client.admin)
        assert status == 422 and field in doc["detail"], (body, raw[:300])
    for c in mails:
        assert client.contact(c["id"])["status"] == "open"
