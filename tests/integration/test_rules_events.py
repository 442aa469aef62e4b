"""Rules of the events after a write: status changes made through the API and by finished
tasks run their handlers, and what those decide is stored as a follow-up."""
import os

from test_rules_support import Client, example_units, rules_section, wait_until

EVENT_RULES = """
loket.on("escalated", function(c) c:tag("ev-escalated") end)
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
