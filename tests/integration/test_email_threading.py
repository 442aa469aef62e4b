"""Which mail lands on which contact, and who gets the answer, against real Dovecot and
Postfix: a third party's reply-all, a citizen's answer on a confidential contact, the daily
cap of acknowledgements with case variants of one address, and what counts as the same
mail (its bytes, its mailbox and UID) versus a new mail that reuses a Message-ID."""

import re
import time
import uuid

from conftest import SLOW, wait_for
from email_support import (CITIZEN, citizen_mail, email_contacts, email_daemon, messages,
                           wait_contacts, wait_mail)
from mail_fixtures import mailserver  # noqa: F401
from test_rules_support import DEFAULT_RULES

INFO = "info@gemeente.test"
THIRD = "burger2@burger.test"
REF = re.compile(r"\[loket (\d{4}-\d{6})\]")


def inbound(client, cid):
    return [m for m in messages(client, cid) if m["direction"] == "in"]


def sent_out(client, cid, count):
    """The contact's outgoing messages once count of them are sent."""
    got = wait_for(lambda: len([m for m in messages(client, cid)
                                if m["direction"] == "out" and m["status"] == "sent"])
                   >= count and messages(client, cid), 15 * SLOW, interval=0.2)
    assert got, messages(client, cid)
    return [m for m in got if m["direction"] == "out"]


def staff_answer(client, cid, text, token=None):
    status, _, _, raw = client.call("POST", "/api/v1/contacts/%d/messages" % cid,
                                    {"body": text}, token=token or client.agent)
    assert status == 202, raw


def settle(mailserver):
    """Waits until the INBOX is empty: every mail in it was registered (or quarantined)."""
    assert wait_for(lambda: not mailserver.messages(INFO), 15 * SLOW, interval=0.2)


def test_reply_all_from_third_party_does_not_thread_or_become_recipient(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver, rules=None)
    first = citizen_mail("Lawaai van de buren", "De buren maken elke nacht lawaai.\n",
                         to="%s, %s" % (INFO, THIRD))
    first_id = re.search(rb"Message-ID: (<[^>]+>)", first).group(1).decode()
    mailserver.send(CITIZEN, [INFO, THIRD], first)
    (contact,) = wait_contacts(client, 1)

    # The neighbour, copied in, answers everybody: In-Reply-To is the citizen's mail. That
    # Message-ID is no secret of loket's: the neighbour's mail is a contact of its own.
    reply_all = citizen_mail("Re: Lawaai van de buren", "Dat is niet waar!\n", sender=THIRD,
                             to="%s, %s" % (CITIZEN, INFO),
                             headers={"In-Reply-To": first_id, "References": first_id})
    mailserver.send(THIRD, [INFO, CITIZEN], reply_all)
    contacts = wait_contacts(client, 2)
    assert len(inbound(client, contact["id"])) == 1, inbound(client, contact["id"])
    (other,) = [c for c in contacts if c["id"] != contact["id"]]
    assert other["subject"] == "Re: Lawaai van de buren"
    assert client.contact(contact["id"])["status"] == contact["status"]

    # Staff answer the citizen's contact: it goes to the citizen, not to the neighbour.
    mailserver.clear(CITIZEN)
    staff_answer(client, contact["id"], "We nemen contact op met de wijkagent.")
    (answer,) = wait_mail(mailserver, CITIZEN)
    assert answer["To"].addresses[0].addr_spec == CITIZEN
    (out,) = sent_out(client, contact["id"], 1)
    assert out["recipients"] == [CITIZEN]

    # The neighbour answers loket's own mail (the citizen passed it on): that Message-ID
    # threads from anybody, but the next answer still goes to the citizen.
    mailserver.clear(THIRD)
    fwd = citizen_mail("Re: " + answer["Subject"], "Ik wil ook gehoord worden.\n",
                       sender=THIRD, headers={"In-Reply-To": answer["Message-ID"],
                                              "References": answer["Message-ID"]})
    mailserver.send(THIRD, [INFO], fwd)
    assert wait_for(lambda: len(inbound(client, contact["id"])) == 2, 15 * SLOW,
                    interval=0.2), inbound(client, contact["id"])
    assert inbound(client, contact["id"])[1]["sender"] == THIRD
    mailserver.clear(CITIZEN)
    staff_answer(client, contact["id"], "De wijkagent komt langs.")
    outs = sent_out(client, contact["id"], 2)
    assert outs[-1]["recipients"] == [CITIZEN], outs
    wait_mail(mailserver, CITIZEN)
    assert mailserver.messages(THIRD) == []


def test_citizen_answer_to_own_mail_still_threads(loketd, mailserver):
    """The citizen may answer their own first mail (a forgotten attachment): from the
    address the contact came in with, that Message-ID threads."""
    d, client = email_daemon(loketd, mailserver, rules=None)
    first = citizen_mail("Bouwaanvraag", "Mijn aanvraag volgt.\n")
    first_id = re.search(rb"Message-ID: (<[^>]+>)", first).group(1).decode()
    mailserver.send(CITIZEN, [INFO], first)
    (contact,) = wait_contacts(client, 1)
    mailserver.send(CITIZEN, [INFO], citizen_mail("Re: Bouwaanvraag", "Hierbij het plan.\n",
                                                  headers={"In-Reply-To": first_id}))
    assert wait_for(lambda: len(inbound(client, contact["id"])) == 2, 15 * SLOW, interval=0.2)
    assert len(email_contacts(client)) == 1


def test_citizen_reply_to_confidential_contact_is_threaded_not_quarantined(
        loketd, mailserver, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-vertrouwelijk.lua").write_text(
        'loket.on("contact", function(c) c.confidential = true end)\n')
    d, client = email_daemon(loketd, mailserver, rules=str(rules))
    mailserver.send(CITIZEN, [INFO], citizen_mail("Schuldbemiddeling", "Ik heb hulp nodig.\n"))
    (contact,) = wait_contacts(client, 1)
    assert client.contact(contact["id"])["confidential"] is True
    staff_answer(client, contact["id"], "Kom langs op dinsdag.", token=client.admin)
    (answer,) = wait_mail(mailserver, CITIZEN)

    # An answer to loket's mail, and a mail with only the token: both land on the contact.
    mailserver.send(CITIZEN, [INFO], citizen_mail(
        "Re: " + answer["Subject"], "Dinsdag past.\n",
        headers={"In-Reply-To": answer["Message-ID"], "References": answer["Message-ID"]}))
    mailserver.send(CITIZEN, [INFO], citizen_mail(
        "Nog iets [loket %s]" % contact["reference"], "Welke documenten?\n"))
    assert wait_for(lambda: len(inbound(client, contact["id"])) == 3, 15 * SLOW,
                    interval=0.2), (inbound(client, contact["id"]), d.log()[-2000:])
    settle(mailserver)
    assert mailserver.messages(INFO, "Quarantine") == []
    status, doc, _, raw = client.call("GET", "/api/v1/email/quarantine", token=client.admin)
    assert status == 200 and doc["items"] == [], raw[:500]
    assert len(email_contacts(client)) == 1
    assert [m["body"].strip() for m in inbound(client, contact["id"])] == [
        "Ik heb hulp nodig.", "Dinsdag past.", "Welke documenten?"]


def test_ack_per_day_counts_case_variants_as_one_address(loketd, mailserver):
    """Three questions from one address written three ways, with ack_per_day = 1: one
    acknowledgement, the others held back by the cap (and said so), not three."""
    d, client = email_daemon(loketd, mailserver, rules=DEFAULT_RULES, ack_per_day="1")
    variants = ["Burger1@Burger.TEST", "burger1@burger.test", "BURGER1@BURGER.test"]
    for i, sender in enumerate(variants):
        mailserver.append(INFO, "INBOX", citizen_mail("Vraag nummer %d" % i,
                                                      "Een vraag.\n",
                                                      sender=sender))
    contacts = wait_contacts(client, 3)

    def settled():
        outs = [m for c in contacts for m in messages(client, c["id"])
                if m["direction"] == "out"]
        return len(outs) == 3 and all(m["status"] in ("sent", "failed") for m in outs) and outs

    outs = wait_for(settled, 20 * SLOW, interval=0.3)
    assert outs, [m for c in contacts for m in messages(client, c["id"])]
    time.sleep(3 * SLOW)  # retry_max is 2 s: anything still coming would be here now
    assert sorted(m["status"] for m in outs) == ["failed", "failed", "sent"], outs
    assert len(re.findall(r"not sent outbox=\d+ .*ack_per_day", d.log())) == 2, d.log()[-3000:]
    assert len(mailserver.messages(CITIZEN)) == 1
    # Stored the one way, whichever way the sender wrote it.
    assert {m["recipients"][0] for m in outs if m["status"] == "sent"} == {CITIZEN}


def test_different_mail_with_known_message_id_is_registered_and_flagged(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver, rules=None)
    shared = "%s@burger.test" % uuid.uuid4().hex
    mailserver.append(INFO, "INBOX", citizen_mail("Eerste vraag", "Over de kermis.\n",
                                                  msgid=shared))
    (first,) = wait_contacts(client, 1)
    # Another mail, another sender, the same Message-ID (a buggy client, or somebody who
    # knows it): a contact of its own, flagged with the contact that had the id first.
    mailserver.append(INFO, "INBOX", citizen_mail("Tweede vraag", "Over de markt.\n",
                                                  sender=THIRD, msgid=shared))
    contacts = wait_contacts(client, 2)
    (second,) = [c for c in contacts if c["id"] != first["id"]]
    assert second["subject"] == "Tweede vraag" and "Over de markt." in second["body"]
    assert "message-id-seen" in second["tags"]
    assert second["meta"]["message_id_seen"] == first["reference"]
    assert "message-id-seen" not in client.contact(first["id"])["tags"]
    (msg,) = inbound(client, second["id"])
    assert msg["meta"]["message_id_seen"] == first["reference"]
    settle(mailserver)
    assert len(mailserver.messages(INFO, "Processed")) == 2
    assert re.search(r"mail registered mailbox=info uid=\d+ reference=%s result=contact "
                     r"flagged=message-id-seen" % second["reference"], d.log()), d.log()[-2000:]
    # Nothing of the mail in the log: neither the Message-ID nor an address.
    assert shared not in d.log() and THIRD not in d.log()


def test_same_mail_twice_is_one_contact(loketd, mailserver):
    """The same bytes APPENDed twice (new UIDs, as after a renumbered folder or a client
    that saves twice) are one contact; a mail that differs in one byte is another."""
    d, client = email_daemon(loketd, mailserver, rules=None, start=False)
    raw = citizen_mail("Parkeerkaart", "Hoe vraag ik een bewonerskaart aan?\n")
    mailserver.append(INFO, "INBOX", raw)
    mailserver.append(INFO, "INBOX", raw)
    d.start()
    settle(mailserver)
    assert len(email_contacts(client)) == 1
    assert len(mailserver.messages(INFO, "Processed")) == 2
    assert re.search(r'loket_email_intake_total\{mailbox="info",result="duplicate"\} 1',
                     client.metrics()), client.metrics()
    mailserver.append(INFO, "INBOX", raw.replace(b"bewonerskaart", b"bezoekerskaart"))
    wait_contacts(client, 2)
