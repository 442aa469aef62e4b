"""Rules of the events after a write: status changes made through the API, finished tasks
and tasks past their deadline run their handlers, and what those decide is stored as a
follow-up. Also the catalogue the rules read, as GET /api/v1/catalogue shows it."""
import csv
import os
import re
import time

from conftest import SLOW
from test_rules_support import (CATALOGUE, Client, always_open_units, example_units,
                                history_of, rule_runs, rules_section, wait_until)

EVENT_RULES = """
loket.on("escalated", function(c) c:tag("ev-escalated") end)
loket.on("escalated", function(c, task) c:tag("task-" .. task.department) end)
loket.on("resolved", function(c) c:tag("ev-resolved") end)
loket.on("reopened", function(c) c:tag("ev-reopened") end)
loket.on("closed", function(c) c:tag("ev-closed") end)
"""


def daemon(loketd, tmp_path):
    rules = tmp_path / "event-rules"
    rules.mkdir()
    (rules / "10-events.lua").write_text(EVENT_RULES)
    d = loketd(extra=rules_section(str(rules)) + example_units())
    return Client(d)


def tags_of(client, cid):
    return client.contact(cid)["tags"]


def test_status_changes_run_their_event_rules(loketd, tmp_path):
    client = daemon(loketd, tmp_path)
    c = client.create(channel="phone", subject="Vraag")
    client.action(c["id"], "resolve", {"answer": "Beantwoord aan de balie"})
    assert wait_until(lambda: "ev-resolved" in tags_of(client, c["id"]), 5), \
        client.contact(c["id"])
    client.action(c["id"], "reopen", {"reason": "burger belt terug"})
    assert wait_until(lambda: "ev-reopened" in tags_of(client, c["id"]), 5)
    client.action(c["id"], "escalate", {"department": "omgeving", "reason": "advies"})
    assert wait_until(lambda: "ev-escalated" in tags_of(client, c["id"]), 5)
    # The rules of "escalated" get the task as their second argument.
    assert "task-omgeving" in tags_of(client, c["id"]), client.contact(c["id"])
    history = client.contact(c["id"])["history"]
    assert any(h["actor"].startswith("rule:10-events.lua") for h in history), history


def test_a_finished_task_closes_the_contact_and_runs_closed_rules(loketd, tmp_path):
    client = daemon(loketd, tmp_path)
    c = client.create(channel="email", subject="Bouwaanvraag")
    escalated = client.action(c["id"], "escalate", {"department": "omgeving", "reason": "advies"})
    task = escalated["tasks"][0]
    status, body, _, _ = client.call("POST", "/api/v1/tasks/%d/done" % task["id"],
                                     token=client.admin)
    assert status == 200, body
    assert wait_until(lambda: "ev-closed" in tags_of(client, c["id"]), 5), \
        client.contact(c["id"])
    assert client.contact(c["id"])["status"] == "closed"



DECIDING_RULES = """
loket.on("reopened", function(c)
  c:resolve{ answer = "Opnieuw beantwoord door de regels" }
  c:assign{ to = "an.peeters" }
  c.language = "en"
  c.confidential = true
end)
loket.on("resolved", function(c) c:tag("ev-resolved") end)
loket.on("escalated", function(c) c:tag("ev-escalated") end)
loket.on("escalated", function(c) c:escalate{ to = "burgerzaken", reason = "nog eens" } end)
loket.on("escalated", function(c) c.line = 1 end)
"""


def test_rules_in_events_decide_as_the_api_would(loketd, tmp_path):
    """What rules decide about a contact that is already stored takes effect as it says, or
    fails: a resolution on a reopened contact resolves it (answer, assignee, language,
    confidential with it), runs the rules of "resolved" and moves the gauges; an escalation
    of a contact that is escalated already, or a line set after intake, fails the rule
    (history rule_failed) instead of a history that claims what was not done."""
    rules = tmp_path / "deciding"
    rules.mkdir()
    (rules / "10-deciding.lua").write_text(DECIDING_RULES)
    client = Client(loketd(extra=rules_section(str(rules)) + example_units()))

    c = client.create(channel="phone", subject="Vraag over de afvalkalender")
    client.action(c["id"], "resolve", {"answer": "Aan de balie"})
    client.action(c["id"], "reopen", {"reason": "burger belt terug"})

    def resolved_by_rules():
        got = client.contact(c["id"])
        return got if got["status"] == "resolved" and got.get("assignee") else None
    got = wait_until(resolved_by_rules, 5 * SLOW)
    assert got, client.contact(c["id"])
    assert got["answer"] == "Opnieuw beantwoord door de regels"
    assert got["assignee"] == "an.peeters"
    assert got["language"] == "en" and got["confidential"] is True
    # A follow-up stores the rules' rows, not the history it read again.
    assert len(history_of(got, "created")) == 1 and len(history_of(got, "reopen")) == 1, \
        got["history"]
    decided = [h["detail"] for h in history_of(got, "rule", "rule:10-deciding.lua:2")]
    assert decided == ["resolve at the first line", "assign to an.peeters",
                       'set language = "en"', "set confidential = true"], got["history"]
    assert [h["to"] for h in got["history"] if h["action"] == "resolve"] == \
        ["resolved", "resolved"], got["history"]
    metrics = client.metrics()
    assert re.search(r'loket_contacts\{channel="phone",status="resolved"\} 1\b', metrics), \
        metrics
    assert re.search(r'loket_contacts\{channel="phone",status="open"\} 0\b', metrics), metrics

    e = client.create(channel="email", subject="Bouwaanvraag")
    client.action(e["id"], "escalate", {"department": "omgeving", "reason": "advies"})
    assert wait_until(lambda: "ev-escalated" in tags_of(client, e["id"]), 5 * SLOW)
    assert wait_until(lambda: len(history_of(client.contact(e["id"]), "rule_failed")) == 2,
                      5 * SLOW), client.contact(e["id"])["history"]
    got = client.contact(e["id"])
    assert got["status"] == "escalated" and got["department"] == "omgeving"
    assert got["line"] == 2
    assert [t["department"] for t in got["tasks"]] == ["omgeving"]
    assert not any("burgerzaken" in (h.get("detail") or "") for h in got["history"])


OVERDUE_RULES = """
loket.on("contact", function(c)
  c:escalate{ to = "burgerzaken", reason = "advies", within = "1m" }
end)
loket.on("overdue", function(c) c:tag("te-laat") end)
loket.on("overdue", function(c, extra) c:tag("te-laat-bij-" .. extra.task.department) end)
"""

def test_a_task_past_its_deadline_runs_overdue_rules(loketd, tmp_path):
    """A deadline timer fires on time (a minute of open time, the shortest there is; the
    test clock moves it): not before, and once due the history says the task is overdue
    and the rules of "overdue" run on the contact."""
    rules = tmp_path / "overdue-rules"
    rules.mkdir()
    (rules / "10-overdue.lua").write_text(OVERDUE_RULES)
    d = loketd(extra=rules_section(str(rules), catalogue=None) + always_open_units(tmp_path),
               test_clock=True)
    client = Client(d)
    c = client.create(channel="phone", subject="Advies gevraagd")
    assert c["status"] == "escalated" and c["line"] == 2, c
    d.move_clock(50)  # ten seconds before the deadline
    time.sleep(1 * SLOW)
    assert "te-laat" not in tags_of(client, c["id"]), client.contact(c["id"])
    assert history_of(client.contact(c["id"]), action="overdue") == []
    d.move_clock(11)
    assert wait_until(lambda: "te-laat" in tags_of(client, c["id"]), 5 * SLOW), \
        (client.contact(c["id"]), d.log()[-2000:])
    # The rules of "overdue" get the task that is late.
    assert "te-laat-bij-burgerzaken" in tags_of(client, c["id"]), client.contact(c["id"])
    doc = client.contact(c["id"])
    overdue = history_of(doc, action="overdue")
    assert [(h["actor"], h["detail"]) for h in overdue] == \
        [("loketd", "a task passed its due time")], doc["history"]
    assert doc["status"] == "escalated" and doc["tasks"][0]["status"] == "open", doc


REMINDER_RULES = """
loket.on("contact", function(c)
  c:remind{ after = "1m", call = "nabellen" }
end)
loket.on("reminder", function(c, extra)
  c:tag("herinnerd-" .. extra.call)
  c.priority = "high"
end)
"""


def test_reminder_event_runs_its_rules(loketd, tmp_path):
    """c:remind{ after, call } (docs/rules.md): when the timer is due (the test clock moves
    it) the rules of "reminder" run on the contact with { call = ... }, once, and what they
    decide is stored; not before it is due."""
    rules = tmp_path / "reminder-rules"
    rules.mkdir()
    (rules / "10-reminder.lua").write_text(REMINDER_RULES)
    d = loketd(extra=rules_section(str(rules), catalogue=None) + always_open_units(tmp_path),
               test_clock=True)
    client = Client(d)
    c = client.create(channel="phone", subject="Terugbellen a.u.b.")
    d.move_clock(50)
    time.sleep(1 * SLOW)
    assert "herinnerd-nabellen" not in tags_of(client, c["id"]), client.contact(c["id"])
    d.move_clock(11)
    assert wait_until(lambda: "herinnerd-nabellen" in tags_of(client, c["id"]), 5 * SLOW), \
        (client.contact(c["id"]), d.log()[-2000:])
    doc = client.contact(c["id"])
    assert doc["priority"] == "high", doc
    assert doc["status"] == "open", doc
    # Fired once: moving on an hour runs nothing more.
    d.move_clock(3600)
    time.sleep(1 * SLOW)
    doc = client.contact(c["id"])
    assert doc["tags"].count("herinnerd-nabellen") == 1, doc
    assert rule_runs(client.metrics(), "10-reminder.lua:5", "ok") == 1, client.metrics()


def catalogue_rows(path):
    """The products of a catalogue file as the API shows them, with Python's own CSV reader,
    and each product's standard answer from the answers folder beside it."""
    answers = os.path.join(os.path.dirname(path), "answers")

    def answer(code):
        try:
            with open(os.path.join(answers, code + ".txt"), encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return None
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(line for line in f if not line.startswith("#")))
    header, products = rows[0], rows[1:]
    out = []
    for row in products:
        p = dict(zip(header, row))
        out.append({"code": p["code"], "name": p["name"], "theme": p.get("theme") or None,
                    "line": int(p["line"]),
                    "department": p["department"] or None, "organisation": p["organisation"],
                    "service_time": p["service_time"] or None,
                    "appointment": p["appointment"] == "yes", "digital": p["digital"] == "yes",
                    "keywords": [k for k in re.split(r"[ ;]+", p["keywords"]) if k],
                    "standard_answer": answer(p["code"])})
    return out


def test_catalogue_api_shows_the_loaded_catalogue(loketd, tmp_path):
    client = daemon(loketd, tmp_path)
    status, doc, _, raw = client.call("GET", "/api/v1/catalogue", token=client.agent)
    assert status == 200, raw[:300]
    assert doc["items"] == catalogue_rows(CATALOGUE)
    assert len(doc["items"]) > 40
    status, doc, _, raw = client.call("GET", "/api/v1/catalogue")
    assert status == 401 and doc["title"] == "Unauthorized", raw[:300]
