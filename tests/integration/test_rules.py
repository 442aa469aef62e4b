"""The rules engine as a user meets it: the default rules of scripts/rules on real contacts,
reloading rules (loketctl reload and SIGHUP) with a broken file, durable reminders that
fire after a restart, and an admin trying rules out with loketctl rules test and replay.
See ../shared/DESIGN.md, "Rules (Lua 5.4)", docs/api.md and docs/rules.md.
"""

import datetime
import json
import os
import re
import signal
import time

import pytest

from conftest import SLOW
from test_rules_support import (BRUSSELS, DEFAULT_RULES, ETC, Calendar, Client,
                                always_open_units, example_units, history_of, parse_time,
                                rule_runs, rules_section, wait_until)


def actor_line(contact, file_name):
    """The history rows of rules of file_name: rule:FILE:LINE actors."""
    return history_of(contact, actor_prefix="rule:%s:" % file_name)


# (a) the default rules -------------------------------------------------------------------

def default_rules_daemon(loketd):
    d = loketd(extra=rules_section(DEFAULT_RULES) + example_units())
    d.wait_log(r"rules loaded .*contact_rules=[1-9]")
    return d, Client(d)


def test_default_rules_escalate_an_omgevingsvergunning_mail(loketd):
    d, client = default_rules_daemon(loketd)
    gemeente = Calendar(os.path.join(ETC, "calendar-gemeente.conf"))

    created = client.create(channel="email", subject="Vraag over mijn omgevingsvergunning",
                            body="Hoe ver staat mijn aanvraag voor de verbouwing?",
                            party={"name": "An Peeters", "email": "an.peeters@example.be"})
    # The 201 already carries what the rules decided: they run before the write.
    assert created["product"] == "omgevingsvergunning", created
    assert created["status"] == "escalated" and created["line"] == 2, created

    c = client.contact(created["id"])
    assert c["product"] == "omgevingsvergunning"
    assert c["status"] == "escalated"
    assert c["line"] == 2
    assert c["department"] == "omgeving"
    assert c["organisation"] == "gemeente"

    # 20-classify.lua found the product in the subject, with the catalogue's keywords.
    classify = actor_line(c, "20-classify.lua")
    assert [h["detail"] for h in classify if h["action"] == "rule"] == \
        ['set product = "omgevingsvergunning"'], c["history"]

    # 10-routing.lua handed it to the department with the product's service time (5d).
    routing = [h for h in actor_line(c, "10-routing.lua") if h["action"] == "rule"]
    assert len(routing) == 1, c["history"]
    m = re.match(r"^escalate to omgeving within 5d, due (\S+)$", routing[0]["detail"])
    assert m, routing[0]

    assert len(c["tasks"]) == 1, c["tasks"]
    task = c["tasks"][0]
    assert task["department"] == "omgeving"
    assert task["status"] == "open"
    assert task["created_by"].startswith("rule:10-routing.lua:"), task
    assert "Omgevingsvergunning" in task["reason"], task
    assert task["due_at"] == m.group(1), (task, routing[0])

    # The deadline is five open days on, at a moment the municipality is open.
    due, received = parse_time(task["due_at"]), parse_time(c["received_at"])
    assert due - received > datetime.timedelta(days=4), (received, due)
    assert due - received < datetime.timedelta(days=30), (received, due)
    assert gemeente.within_open_hours(due), \
        "task due %s (%s in Brussels) is not in the gemeente's opening hours" % (
            task["due_at"], due.astimezone(BRUSSELS))

    # An escalated contact is no first-line contact: no reminder for the team lead.
    assert not [h for h in actor_line(c, "30-first-line-reminder.lua")], c["history"]
    # No rule failed.
    assert not history_of(c, action="rule_failed"), c["history"]


def test_default_rules_remind_about_an_open_phone_contact(loketd):
    d, client = default_rules_daemon(loketd)
    gemeente = Calendar(os.path.join(ETC, "calendar-gemeente.conf"))

    created = client.create(channel="phone", subject="Vraag zonder product",
                            body="De beller wil teruggebeld worden.")
    c = client.contact(created["id"])
    assert c["status"] == "open"
    assert c["line"] == 1
    assert c["product"] is None
    assert c["department"] is None
    assert c["tasks"] == []

    rows = [h for h in actor_line(c, "30-first-line-reminder.lua") if h["action"] == "rule"]
    assert len(rows) == 1, c["history"]
    m = re.match(r"^remind after 4h \(at (\S+)\) unless resolved, then escalate to onthaal$",
                 rows[0]["detail"])
    assert m, rows[0]
    at, received = parse_time(m.group(1)), parse_time(c["received_at"])
    assert at > received
    assert gemeente.within_open_hours(at), "reminder at %s is not in opening hours" % m.group(1)
    # A phone call gets no acknowledgement mail, and nothing failed.
    assert not actor_line(c, "40-acknowledge.lua"), c["history"]
    assert not history_of(c, action="rule_failed"), c["history"]


# (b) reload ------------------------------------------------------------------------------

def write(path, text):
    with open(path, "w") as f:
        f.write(text)


TAG_RULE = """-- tags every contact with the version of the rules
loket.on("contact", function(c)
  c:tag("%s")
end)
"""

# Three ways a rule file fails to load, each pointing at line 3 of 20-broken.lua.
BROKEN_RULES = {
    "syntax-error": """-- a syntax error on line 3
loket.on("contact", function(c)
  local x = = 1
end)
""",
    "unknown-event": """-- an error while the file runs: an event that does not exist, on line 3
local function h(c) end
loket.on("contcat", h)
""",
    "endless-top-level": """-- the file's own code never ends (line 3): the budget stops the load
local n = 0
while true do n = n + 1 end
""",
}


def tags_of_new_contact(client, what):
    c = client.create(channel="phone", subject="reload test: %s" % what)
    return client.contact(c["id"])["tags"]


@pytest.mark.parametrize("broken", sorted(BROKEN_RULES))
def test_reload_with_a_broken_rule_keeps_the_old_rules(loketd, tmp_path, broken):
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "10-version.lua", TAG_RULE % "v1")
    d = loketd(extra=rules_section(rules, catalogue=None) + example_units())
    client = Client(d)
    assert tags_of_new_contact(client, "start") == ["v1"]

    # New rules, one of them broken: nothing of them may apply.
    write(rules / "10-version.lua", TAG_RULE % "v2")
    write(rules / "20-broken.lua", BROKEN_RULES[broken])
    log_at = len(d.log())
    r = d.ctl("reload")
    assert r.returncode != 0, "loketctl reload succeeded with a broken rule: %r" % r.stdout
    assert "20-broken.lua:3" in r.stdout + r.stderr, \
        "loketctl reload does not name FILE:LINE of the error: %r %r" % (r.stdout, r.stderr)
    d.wait_log(r"reload failed.*20-broken\.lua:3", after=log_at)
    assert d.running()
    assert client.healthz() == 200
    assert tags_of_new_contact(client, "after failed reload") == ["v1"]

    # SIGHUP with the same broken file: still running, still the old rules.
    log_at = len(d.log())
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reload failed.*20-broken\.lua:3", after=log_at)
    assert d.running()
    assert client.healthz() == 200
    assert tags_of_new_contact(client, "after failed SIGHUP") == ["v1"]
    assert d.stats().get("reload_failures") == "2", d.stats()

    # Fixed: the reload succeeds and the new rules apply.
    write(rules / "20-broken.lua", TAG_RULE % "fixed")
    r = d.ctl("reload")
    assert r.returncode == 0, "loketctl reload failed: %r %r\n%s" % (r.stdout, r.stderr, d.log())
    assert tags_of_new_contact(client, "after good reload") == ["v2", "fixed"]

    # SIGHUP of a good folder applies too (and removing a file removes its rule).
    os.unlink(rules / "20-broken.lua")
    log_at = len(d.log())
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"loketd reloaded config=", after=log_at)
    assert tags_of_new_contact(client, "after good SIGHUP") == ["v2"]


def test_a_rule_failing_on_every_contact_is_logged_once_a_minute(loketd, tmp_path):
    """A rule that fails on every contact does not fill the log at intake speed: its first
    failure is logged at once, the next ones only after a minute (with their number); each
    one is in its contact's history and in /metrics, and loketctl stats lists the rule."""
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "50-broken.lua", "loket.on('contact', function(c)\n"
                                   "  error('kapot bij ' .. c.subject)\nend)\n")
    d = loketd(extra=rules_section(rules, catalogue=None) + example_units(), test_clock=True)
    client = Client(d)
    contacts = [client.create(channel="phone", subject="Vraag %d" % i) for i in range(8)]
    for c in contacts:
        failed = history_of(client.contact(c["id"]), "rule_failed")
        assert [(h["actor"], h["detail"]) for h in failed] == \
            [("rule:50-broken.lua:1", "error")], failed
    assert rule_runs(client.metrics(), "50-broken.lua:1", "error") == 8
    # Where it failed (the message's own file:line), not what it said: that quotes the subject.
    assert len(re.findall(r"rule failed rule=50-broken\.lua:1 result=error at=50-broken\.lua:2$",
                          d.log(), re.M)) == 1, d.log()
    assert "Vraag" not in d.log()
    # A minute later (the test clock moves it) the next failure is logged, with the number
    # of failures left out of the log in between.
    d.move_clock(61)
    later = client.create(channel="phone", subject="Vraag na een minuut")
    assert [h["detail"] for h in history_of(client.contact(later["id"]), "rule_failed")] == \
        ["error"]
    d.wait_log(r"rule failed rule=50-broken\.lua:1 result=error at=50-broken\.lua:2 "
               r"\(and 7 times more in the last minute or longer\)$")
    assert len(re.findall(r"rule failed rule=50-broken\.lua:1 ", d.log())) == 2, d.log()
    # loketctl stats names the folder, its handlers and the rules failing since they loaded.
    r = d.ctl("stats")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^rules:\n  dir: %s\n  handlers:\n    contact: 1\n"
                     r"  failing since loaded:\n    - 50-broken\.lua:1 error$" % re.escape(str(rules)),
                     r.stdout, re.M), r.stdout


def test_require_in_rules_loads_from_rules_folder_only(loketd, tmp_path):
    """require("name") loads name.lua of the rules folder (docs/rules.md): a rule uses what
    a shared module returns; a module beside the folder, or named by a path, is refused and
    the rules with it do not load, naming file:line."""
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "gedeeld.lua", 'return { dienst = "omgeving" }\n')
    write(rules / "50-use.lua", 'local gedeeld = require("gedeeld")\n'
                                'loket.on("contact", function(c)\n'
                                '  c:tag("dienst-" .. gedeeld.dienst)\n'
                                'end)\n')
    write(tmp_path / "buiten.lua", 'return { dienst = "buiten" }\n')
    d = loketd(extra=rules_section(rules, catalogue=None) + example_units())
    client = Client(d)
    c = client.create(channel="phone", subject="Vraag over een module")
    assert "dienst-omgeving" in client.contact(c["id"])["tags"], client.contact(c["id"])

    sample = tmp_path / "sample.json"
    write(sample, json.dumps({"channel": "phone", "subject": "x"}))
    for name, why in (("buiten", "buiten.lua"), ("../buiten", "only modules of the rules folder"),
                      ("/etc/passwd", "only modules of the rules folder")):
        outside = tmp_path / ("outside-%d" % len(name))
        outside.mkdir()
        write(outside / "50-use.lua", 'local m = require("%s")\n'
                                      'loket.on("contact", function(c) c:tag(m.dienst) end)\n'
                                      % name)
        r = d.ctl("rules", "test", str(outside), str(sample))
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert re.search(r"the rules do not load: .*50-use\.lua:1:", r.stderr), (name, r.stderr)
        assert why in r.stderr, (name, r.stderr)
        assert "buiten" not in r.stdout, (name, r.stdout)


LOG_RULE = """loket.on("contact", function(c)
  loket.log("lang " .. string.rep("x", 600))
  loket.log("regel\\nmet\\tstuurtekens\\27[31m")
  for i = 3, 25 do loket.log("regel " .. i) end
end)
"""


def test_loket_log_is_capped(loketd, tmp_path):
    """loket.log writes at most 20 lines per handler call, then one line saying the rest is
    left out; each line cut to 500 bytes, control characters made spaces (docs/rules.md).
    The cap is per call: the next contact gets its 20 lines again."""
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "50-log.lua", LOG_RULE)
    d = loketd(extra=rules_section(rules, catalogue=None) + example_units())
    client = Client(d)
    for n in (1, 2):
        client.create(channel="phone", subject="Vraag %d" % n)
        lines = re.findall(r"^\S+ info rules log rule=50-log\.lua:1 msg=\"(.*)\"$", d.log(), re.M)
        assert len(lines) == 21 * n, "%d loket.log lines after %d contacts:\n%s" % (
            len(lines), n, "\n".join(lines))
        mine = lines[21 * (n - 1):]
        assert mine[0] == ("lang " + "x" * 600)[:500], mine[0]
        assert mine[1] == "regel met stuurtekens [31m", mine[1]
        assert mine[2:20] == ["regel %d" % i for i in range(3, 21)], mine[2:20]
        assert mine[20] == "(more loket.log lines in this call are left out)", mine[20]
    assert "regel 21" not in d.log()


# (c) durable reminders -------------------------------------------------------------------

REMIND_RULE = """-- a first-line contact still open a minute later goes to burgerzaken
loket.on("contact", function(c)
  if c.line == 1 and c.status == "open" then
    local to = c.subject == "Voor wonen" and "wonen" or "burgerzaken"
    c:remind{ after = "1m", unless = "resolved",
              escalate = { to = to, reason = "te laat" } }
  end
end)
loket.on("escalated", function(c) c:tag("ev-escalated") end)
"""

# A department of the other organisation, gone from loket.conf before its reminder is due.
WONEN = "[organisation.ocmw]\nname = OCMW\n[department.wonen]\norganisation = ocmw\n"


def test_reminder_due_while_loketd_was_down_fires_after_start(loketd, tmp_path):
    """A minute is the shortest reminder; the test clock (core/lib/util.h) stands in for the
    minute: loketd stops before the reminder is due and starts with its clock past it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "50-remind.lua", REMIND_RULE)
    units = always_open_units(tmp_path)
    d = loketd(extra=rules_section(rules, catalogue=None) + units + WONEN, test_clock=True)
    client = Client(d)

    late = client.create(channel="phone", subject="Niemand neemt op")
    handled = client.create(channel="phone", subject="Meteen beantwoord")
    orphan = client.create(channel="web", subject="Voor wonen")
    client.action(handled["id"], "resolve", {"answer": "Beantwoord aan de telefoon."})

    c = client.contact(late["id"])
    rows = [h for h in actor_line(c, "50-remind.lua") if h["action"] == "rule"]
    assert len(rows) == 1, c["history"]
    m = re.match(r"^remind after 1m \(at (\S+)\) unless resolved, then escalate to burgerzaken$",
                 rows[0]["detail"])
    assert m, rows[0]
    due = parse_time(m.group(1))
    # Always open: one minute of open time is one minute.
    assert abs((due - parse_time(c["received_at"])).total_seconds() - 60) < 1, (due, c)

    # Down before it is due; up again after.
    assert client.contact(late["id"])["status"] == "open"
    assert d.stop() == 0, d.log()
    d.proc = None
    d.close()
    d.write_config(d.config(extra=rules_section(rules, catalogue=None) + units))
    left = (due - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert left > 0, "loketd stopped only after the reminder was due; the test is too slow"
    # As if loketd had stayed down until two seconds past the due time.
    d.clock_offset = left + 2
    t0 = time.monotonic()
    d.start()

    def escalated():
        doc = client.contact(late["id"])
        return doc if doc["status"] == "escalated" else None

    c = wait_until(escalated, 10 * SLOW)
    assert c, "the reminder due while loketd was down did not fire after start: %r\n%s" % (
        client.contact(late["id"]), d.log())
    assert time.monotonic() - t0 < 10 * SLOW
    assert c["department"] == "burgerzaken"
    assert c["line"] == 2
    reminder = history_of(c, action="reminder")
    assert len(reminder) == 1, c["history"]
    assert reminder[0]["actor"].startswith("rule:50-remind.lua:"), reminder
    assert [t["department"] for t in c["tasks"]] == ["burgerzaken"], c["tasks"]
    assert c["tasks"][0]["reason"] == "te laat", c["tasks"]
    # As an escalation through the API: the rules of "escalated" run, the gauges follow.
    assert wait_until(lambda: "ev-escalated" in client.contact(late["id"])["tags"], 5 * SLOW), \
        client.contact(late["id"])
    metrics = client.metrics()
    assert re.search(r'^loket_contacts\{channel="phone",status="escalated"\} 1$', metrics,
                     re.M), metrics

    # The department its reminder named is gone from loket.conf: the contact stays where it
    # is, and its history and the log say why.
    def told():
        doc = client.contact(orphan["id"])
        return doc if history_of(doc, action="reminder") else None
    o = wait_until(told, 10 * SLOW)
    assert o, client.contact(orphan["id"])
    assert o["status"] == "open" and o["department"] is None and o["tasks"] == [], o
    assert history_of(o, action="reminder")[0]["detail"] == \
        "not handled in time; not escalated: department 'wonen' is not configured"
    assert "a reminder cannot escalate: department=wonen is not configured" in d.log()

    # unless = "resolved": the contact answered in time is left alone, also once its timer
    # has come due (the three timers were due in the same minute).
    def fired():
        m = re.search(r"^loket_timers_fired_total(?:\{\})? (\S+)$", client.metrics(), re.M)
        return m and float(m.group(1)) >= 3
    assert wait_until(fired, 10 * SLOW), client.metrics()
    h = client.contact(handled["id"])
    assert h["status"] == "resolved", h
    assert h["department"] is None and h["tasks"] == [], h
    assert not history_of(h, action="reminder"), h["history"]
    assert not [x for x in h["history"] if x["action"] == "escalate"], h["history"]


# (d) loketctl rules test and rules replay ------------------------------------------------

def contacts_stored(client):
    status, doc, _, raw = client.call("GET", "/api/v1/contacts?limit=100", token=client.admin)
    assert status == 200, raw[:300]
    return doc["items"]


def test_loketctl_rules_test_prints_every_decision_and_stores_nothing(loketd, tmp_path):
    """An admin tries the default rules on a sample mail on Christmas Eve just before closing
    time: every decision with its rule, the due time counted in the department's opening
    hours (docs/rules.md shows the same run), and nothing registered or sent."""
    d = loketd(extra=rules_section(DEFAULT_RULES) + example_units())
    client = Client(d)
    sample = tmp_path / "mail.json"
    write(sample, json.dumps({"channel": "email", "subject": "Vraag over mijn omgevingsvergunning",
                              "body": "Hoe ver staat mijn aanvraag?",
                              "party": {"name": "An Peeters", "email": "an.peeters@example.be"}}))
    r = d.ctl("rules", "test", DEFAULT_RULES, str(sample), "--at", "2026-12-24 16:55")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [re.sub(r" +", " ", line.strip()) for line in r.stdout.splitlines()]
    assert lines[1:] == [
        "at Thu 2026-12-24 16:55 CET",
        '20-classify.lua:3 set product = "omgevingsvergunning"',
        "10-routing.lua:3 escalate to omgeving within 5d, due 2027-01-06T07:30:00.000Z",
        '40-acknowledge.lua:10 tag ["buiten-openingsuren"]',
        "40-acknowledge.lua:10 reply with template ontvangen-buiten-openingsuren via email",
        "the contact would be stored as:",
        'status "escalated"',
        "line 2",
        'department "omgeving"',
        'organisation "gemeente"',
        'product "omgevingsvergunning"',
        'priority "normal"',
        'tags ["buiten-openingsuren"]',
        "task due Wed 2027-01-06 08:30 CET",
        "reply template ontvangen-buiten-openingsuren",
        # Stored escalated, it runs the rules of "escalated" next.
        'then the rules of "escalated":',
        "40-acknowledge.lua:23 reply with template doorverwezen via email",
    ], r.stdout
    assert contacts_stored(client) == []

    # Bad input: a clear message and exit code 2, and still nothing stored.
    r = d.ctl("rules", "test", DEFAULT_RULES, str(sample), "--at", "morgen")
    assert r.returncode == 2 and "--at: expected \"2026-12-24 16:55\", got 'morgen'" in r.stderr, \
        r.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    write(broken / "10-half.lua", "loket.on('contact', function(c)\n  c:tag('x'\nend)\n")
    r = d.ctl("rules", "test", str(broken), str(sample))
    assert r.returncode == 2, r.stderr
    assert re.search(r"the rules do not load: .*10-half\.lua:\d+:", r.stderr), r.stderr
    write(tmp_path / "nonsense.json", "{\"channel\": ")
    r = d.ctl("rules", "test", DEFAULT_RULES, str(tmp_path / "nonsense.json"))
    assert r.returncode == 2 and "nonsense.json:1:" in r.stderr, r.stderr
    assert contacts_stored(client) == []


def test_loketctl_rules_test_runs_the_rules_of_an_event(loketd, tmp_path):
    """With --event, rules test runs the handlers of that event on the sample, with the
    status and the extra argument the sample gives: a citizen's reply that the rules resolve,
    then the rules of "resolved"; a sample that is not of an event is refused (exit 2)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "50-events.lua", """
loket.on("reply", function(c, extra)
  c:tag("antwoord-burger")
  if extra.message.body:find("bedankt", 1, true) then c:resolve{ answer = "afgehandeld" } end
end)
loket.on("resolved", function(c) c:tag("opgelost") end)
loket.on("escalated", function(c, task) c:tag("naar-" .. task.department) end)
""")
    d = loketd(extra=rules_section(rules) + example_units(), start=False)
    sample = tmp_path / "reply.json"
    write(sample, json.dumps({"channel": "email", "subject": "Re: uw vraag", "body": "Bedankt",
                              "department": "burgerzaken",
                              "extra": {"message": {"body": "Het is in orde, bedankt"}}}))
    r = d.ctl("rules", "test", str(rules), str(sample), "--event", "reply")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [re.sub(r" +", " ", line.strip()) for line in r.stdout.splitlines()]
    assert lines[0].startswith('rules of "reply" in ') and lines[0].endswith("(status open)")
    assert lines[2:4] == ['50-events.lua:2 tag ["antwoord-burger"]',
                          "50-events.lua:2 resolve at the first line"], r.stdout
    assert 'status "resolved"' in lines, r.stdout
    assert lines[-2:] == ['then the rules of "resolved":', '50-events.lua:6 tag ["opgelost"]'], \
        r.stdout

    # The rules of "escalated" get the task, in the sample's department by default.
    escalated = tmp_path / "escalated.json"
    write(escalated, json.dumps({"channel": "phone", "department": "burgerzaken"}))
    r = d.ctl("rules", "test", str(rules), str(escalated), "--event", "escalated")
    assert r.returncode == 0 and '50-events.lua:7 tag ["naar-burgerzaken"]' in \
        [re.sub(r" +", " ", line.strip()) for line in r.stdout.splitlines()], r.stdout

    r = d.ctl("rules", "test", str(rules), str(sample), "--event", "antwoord")
    assert r.returncode == 2 and "--event: 'antwoord' is no event" in r.stderr, r.stderr
    write(sample, json.dumps({"channel": "email", "status": "behandeld"}))
    r = d.ctl("rules", "test", str(rules), str(sample), "--event", "reply")
    assert r.returncode == 2 and "status: expected open, escalated, resolved or closed" in \
        r.stderr, r.stderr


DOC_SAMPLE = {"channel": "email", "subject": "Dringend: uithuiszetting en omgevingsvergunning",
              "body": "Ik vrees een uithuiszetting.",
              "party": {"name": "An Peeters", "email": "an.peeters@example.be"}}

# What each worked example of docs/rules.md decides on DOC_SAMPLE (by its first line), run
# with loketctl rules test; a snippet without loket.on runs inside a contact handler.
DOC_EXAMPLES = {
    "-- 10-routing.lua": [],  # the sample has no product: nothing to route
    "local cal = loket.calendar": [],  # at --at 2026-12-22 10:00 burgerzaken is open
    'loket.on("contact", { channel = "email" }, function(c)\n  if c.product': [
        'set product = "omgevingsvergunning"'],
    'loket.on("contact", { channel = { "email", "web" } }': ['set priority = "high"'],
    'loket.on("contact", function(c)\n  local text': [
        'set priority = "urgent"', "escalate to sociale_dienst within 4h"],
    'loket.on("contact", function(c)\n  if c.line == 1': ["remind after 4h"],
    'loket.on("escalated"': [],
    # a contact event does not run the rules of "reply": see DOC_EXAMPLE_RUNS
    'loket.on("reply"': [],
}

# Examples whose decisions show on another run too: (first line, extra loketctl arguments,
# sample to use instead of DOC_SAMPLE or None, what the example decides there).
DOC_EXAMPLE_RUNS = [
    # Christmas Day: every calendar is closed
    ("local cal = loket.calendar", ["--at", "2026-12-25 10:00"], None,
     ['tag ["buiten-openingsuren"]']),
    # a Tuesday evening after closing time
    ("local cal = loket.calendar", ["--at", "2026-12-22 21:30"], None,
     ['tag ["buiten-openingsuren"]']),
    # the citizen answers on an open first-line contact
    ('loket.on("reply"', ["--event", "reply", "--at", "2026-12-22 10:00"],
     dict(DOC_SAMPLE, extra={"message": {"body": "Hier is het gevraagde document."}}),
     ['tag ["antwoord-burger"]', 'set priority = "high"', "remind after 4h"]),
    # the channel filters: a phone call is not the mail or form they are for
    ('loket.on("contact", { channel = { "email", "web" } }', [], dict(DOC_SAMPLE, channel="phone"),
     []),
    ('loket.on("contact", { channel = "email" }, function(c)\n  if c.product', [],
     dict(DOC_SAMPLE, channel="web"), []),
    ('loket.on("contact", { channel = { "email", "web" } }', [], dict(DOC_SAMPLE, channel="web"),
     ['set priority = "high"']),
]


def test_every_worked_example_of_the_rules_guide_runs(loketd, tmp_path):
    """docs/rules.md promises examples an admin can copy: each one loads, runs on a sample
    mail without failing, and decides what the guide says it does. The escalated example
    runs after the one that escalates."""
    with open(os.path.join(os.path.dirname(ETC), "docs", "rules.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```lua\n(.*?)```", f.read(), re.S)
    assert len(blocks) == len(DOC_EXAMPLES), blocks
    d = loketd(extra=rules_section(tmp_path / "unused") + example_units(), start=False)
    sample = tmp_path / "sample.json"
    write(sample, json.dumps(DOC_SAMPLE))
    for i, block in enumerate(blocks):
        (key, expected), = [(k, v) for k, v in DOC_EXAMPLES.items() if block.startswith(k)]
        folder = tmp_path / ("example-%d" % i)
        folder.mkdir()
        text = block if "loket.on(" in block else \
            'loket.on("contact", function(c)\n%send)\n' % block
        write(folder / "50-example.lua", text)
        if key == 'loket.on("escalated"':
            # The example that escalates, so that the contact runs the escalated rules.
            write(folder / "40-escalate.lua", next(
                b for b in blocks if b.startswith('loket.on("contact", function(c)\n  local text')))
        r = d.ctl("rules", "test", str(folder), str(sample), "--at", "2026-12-22 10:00")
        assert r.returncode == 0 and "FAILED" not in r.stdout, (block, r.stdout, r.stderr)
        mine = [re.sub(r" +", " ", line.strip()).split(" ", 1)[1]
                for line in r.stdout.splitlines() if line.strip().startswith("50-example.lua:")]
        if key == 'loket.on("escalated"':
            assert 'then the rules of "escalated":' in r.stdout, r.stdout
            expected = ["reply with template doorverwezen via email"]
        assert len(mine) == len(expected) and all(
            m.startswith(e) for m, e in zip(mine, expected)), (block, mine, expected)
        for first_line, args, other, decides in DOC_EXAMPLE_RUNS:
            if key != first_line:
                continue
            used = sample
            if other is not None:
                used = tmp_path / ("sample-%d.json" % i)
                write(used, json.dumps(other))
            r = d.ctl("rules", "test", str(folder), str(used), *args)
            assert r.returncode == 0 and "FAILED" not in r.stdout, (block, args, r.stdout,
                                                                     r.stderr)
            got = [re.sub(r" +", " ", line.strip()).split(" ", 1)[1]
                   for line in r.stdout.splitlines()
                   if line.strip().startswith("50-example.lua:")]
            assert len(got) == len(decides) and all(
                m.startswith(e) for m, e in zip(got, decides)), (block, args, got, decides)


def test_loketctl_rules_replay_reports_what_candidate_rules_would_change(loketd, tmp_path):
    """Contacts registered without rules, then the default rules replayed over them: the two
    mails about an environment permit would have gone to the second line, the phone call
    would not have changed; the register is only read."""
    empty = tmp_path / "no-rules"
    empty.mkdir()
    d = loketd(extra=rules_section(empty) + example_units())
    client = Client(d)
    party = {"name": "An Peeters", "email": "an.peeters@example.be"}
    mails = [client.create(channel="email", subject="Vraag %d over mijn omgevingsvergunning" % i,
                           party=party) for i in range(2)]
    call = client.create(channel="phone", subject="Wanneer wordt het afval opgehaald?")
    since = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()

    r = d.ctl("rules", "replay", DEFAULT_RULES, "--since", since)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "replayed 3 contacts: 2 would be stored differently, 0 rule calls would fail" \
        in r.stdout, r.stdout
    refs = sorted(m["reference"] for m in mails)
    for rule in ("10-routing.lua:3", "20-classify.lua:3"):
        m = re.search(r"^  %s +2 changed, 0 failed, e\.g\. (\[.*\])$" % re.escape(rule),
                      r.stdout, re.M)
        assert m, r.stdout
        assert sorted(json.loads(m.group(1))) == refs, r.stdout
    assert call["reference"] not in r.stdout
    # Not a terminal: no progress bar on stderr.
    assert "\r" not in r.stderr, r.stderr
    for c in mails + [call]:
        stored = client.contact(c["id"])
        assert (stored["status"], stored["line"], stored["product"]) == ("open", 1, None), stored

    # Contacts from before --since are not replayed; a date that is none is refused.
    r = d.ctl("rules", "replay", DEFAULT_RULES, "--since", "2099-01-01")
    assert r.returncode == 0 and "replayed 0 contacts" in r.stdout, r.stdout + r.stderr
    r = d.ctl("rules", "replay", DEFAULT_RULES, "--since", "vorige week")
    assert r.returncode == 2 and "--since: expected a date like 2026-11-01" in r.stderr, r.stderr
