"""Register events end to end, through the hello plugin, which subscribes to contacts
created and to published events and shows what it heard on /hello-events: the ids are
the register's, durable and increasing across a restart; a contact posted over HTTP and a
mail that became a contact both reach it; an event a plugin publishes for a role or user
reaches subscribers, and a malformed one is refused."""

import json

from api_fixtures import finish_api, make_api, query
from conftest import SLOW, wait_for
from email_support import CITIZEN, citizen_mail, email_conf, wait_contacts
from mail_fixtures import mailserver  # noqa: F401
from test_rules_support import DEFAULT_RULES, Client, example_units, rules_section


def heard(api):
    return api.ok("GET", "/hello-events")


def events_table(api, after=0):
    """(id, kind, contact_id) of the events table after id `after`, as a reader sees them."""
    con = api.db()
    try:
        return con.execute("SELECT id, kind, contact_id FROM events WHERE id > ? ORDER BY id",
                           (after,)).fetchall()
    finally:
        con.close()


def test_contacts_posted_over_http_reach_a_plugin_with_durable_increasing_ids(tmp_path):
    api = make_api(tmp_path / "a", plugins=["hello"])
    try:
        before = heard(api)
        assert before["contacts_created"] == 0 and before["ids"] == [], before
        made = [api.create(subject="vraag %d" % i) for i in range(3)]
        h = heard(api)
        # Heard by the time the 201 came: the event is published before the answer.
        assert h["contacts_created"] == 3, h
        assert h["ids"] == sorted(h["ids"]) and len(set(h["ids"])) == 3, h
        # The contact's scope rides along, so a stream filters without reading the register.
        assert h["last_created"] == {"status": "open", "channel": "phone",
                                     "scope": {"department": None, "organisation": "gemeente",
                                               "confidential": False}}, h
        # The ids are the register's own rows, one per contact, durable with it.
        rows = [r for r in events_table(api) if r[1] == "contact.created"]
        assert [r[0] for r in rows] == h["ids"], rows
        assert [r[2] for r in rows] == [c["id"] for c in made], rows
        last = h["ids"][-1]

        # A restart: the next ids go on above the last one seen, never reused.
        api.restart()
        api.create(subject="na de herstart")
        after = heard(api)
        assert after["contacts_created"] == 1, after
        assert after["ids"][0] > last, (after, last)
        # Read after the last id seen before the restart: exactly what came later.
        later = events_table(api, last)
        assert [r[0] for r in later if r[1] == "contact.created"] == after["ids"], later
        assert all(r[0] > last for r in later), later
    finally:
        finish_api(api)


def test_a_status_change_is_an_event_after_the_contact_created(tmp_path):
    api = make_api(tmp_path / "a", plugins=["hello"])
    try:
        c = api.create(subject="even bellen")
        api.ok("POST", "/api/v1/contacts/%d/resolve" % c["id"], {"answer": "uitgelegd"})
        rows = events_table(api)
        kinds = [(r[1], r[2]) for r in rows]
        assert kinds == [("contact.created", c["id"]), ("contact.changed", c["id"])], rows
        con = api.db()
        try:
            payload = con.execute("SELECT payload FROM events WHERE id = ?",
                                  (rows[1][0],)).fetchone()[0]
        finally:
            con.close()
        # Statuses, the channel and the contact's scope; nothing the citizen said.
        assert json.loads(payload) == {"status": "resolved", "previous_status": "open",
                                       "channel": "phone",
                                       "scope": {"department": None,
                                                 "organisation": "gemeente",
                                                 "confidential": False}}, payload
    finally:
        finish_api(api)


def test_published_event_for_a_role_reaches_subscribers(tmp_path):
    api = make_api(tmp_path / "a", plugins=["hello"])
    try:
        r = api.call("POST", query("/hello-events/offer", role="agent", user="jan"),
                     token=api.admin)
        assert r.status == 202, r
        p = heard(api)["published"]
        assert p == {"id": 0, "name": "call.offered", "source": "hello", "user": "jan",
                     "role": "agent", "json": {"queue": "algemeen"}}, p
        # Not durable: nothing of it in the register.
        assert [row for row in events_table(api) if row[1] == "call.offered"] == []
        # A role loket does not know is refused, said in the log, and reaches nobody.
        r = api.call("POST", query("/hello-events/offer", role="baas"), token=api.admin)
        assert r.status == 422, r
        assert "role: expected agent, backoffice, admin or intake" in api.d.log()
        # No audience at all is refused too.
        r = api.call("POST", "/hello-events/offer", token=api.admin)
        assert r.status == 422, r
        assert "an event needs an audience" in api.d.log()
        assert heard(api)["published"] == p
        # The route is the admin's.
        assert api.call("POST", query("/hello-events/offer", role="agent"),
                        token=api.agent).status == 403
    finally:
        finish_api(api)


def test_a_mail_contact_reaches_the_plugin(loketd, mailserver):
    for user in mailserver.users:
        mailserver.clear(user)
    d = loketd(plugins=["hello", "chan_email"],
               plugin_conf={"chan_email": email_conf(mailserver)},
               extra=example_units() + rules_section(DEFAULT_RULES))
    client = Client(d)
    mailserver.send(CITIZEN, ["info@gemeente.test"],
                    citizen_mail("Vraag over afval", "Wanneer komt de vuilniswagen?\n"))
    (contact,) = wait_contacts(client, 1)

    def got():
        status, doc, _, _ = client.call("GET", "/hello-events", token=client.admin)
        assert status == 200, doc
        return doc if doc["contacts_created"] == 1 else None

    h = wait_for(got, 10 * SLOW)
    assert h, "the plugin never heard of the mail's contact"
    assert h["last_created"]["channel"] == "email", h
    assert contact["status"] in ("open", "escalated", "resolved")
