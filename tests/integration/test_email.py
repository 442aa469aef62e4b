"""The email channel end to end against real Dovecot and Postfix: intake, the
acknowledgement, threading of the citizen's answer, staff replies with documents, the
loop guard and header injection."""

import base64
import hashlib
import os
import re
import socket
import time

from conftest import SLOW, SRCDIR, wait_for
from email_support import (CITIZEN, citizen_mail, email_contacts, email_daemon, messages,
                           wait_contacts, wait_mail)
from mail_fixtures import mailserver  # noqa: F401
from test_rules_support import DEFAULT_RULES, Client, example_units, rules_section

REF = re.compile(r"\[loket (\d{4}-\d{6})\]")


def test_citizen_mail_becomes_contact_and_gets_acknowledged(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver)
    mailserver.send(CITIZEN, ["info@gemeente.test"],
                    citizen_mail("Vraag over mijn identiteitskaart",
                                 "Goeiedag,\nmijn identiteitskaart is vervallen. Wat moet ik doen?\n"))
    (contact,) = wait_contacts(client, 1)
    assert contact["subject"] == "Vraag over mijn identiteitskaart"
    assert "identiteitskaart is vervallen" in contact["body"]
    assert contact["organisation"] == "gemeente"
    assert contact["party"]["name"] == "Jan Peeters"
    status, parties, _, _ = client.call("GET", "/api/v1/parties?email=" + CITIZEN,
                                        token=client.admin)
    assert status == 200 and parties["items"][0]["id"] == contact["party_id"]

    # Registered means moved out of the INBOX into Processed, bytes intact.
    assert wait_for(lambda: not mailserver.messages("info@gemeente.test"), 10 * SLOW)
    assert len(mailserver.messages("info@gemeente.test", "Processed")) == 1

    # The acknowledgement reaches the citizen: reference, expected date, loop-guard headers.
    # The identity card is burgerzaken's (catalogue): the rules also say it went there.
    mails = wait_mail(mailserver, CITIZEN, count=2)
    subjects = sorted(m["Subject"] for m in mails)
    assert len(mails) == 2 and "doorgegeven aan de dienst burgerzaken" in subjects[1], subjects
    (ack,) = [m for m in mails if "ontvangen" in m["Subject"]]
    assert REF.search(ack["Subject"]).group(1) == contact["reference"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Loket-Reference"] == contact["reference"]
    text = ack.get_body(("plain",)).get_content()
    assert contact["reference"] in text
    assert re.search(r"uiterlijk op \w+dag \d{1,2} \w+ 20\d\d", text), text
    assert ack["From"].addresses[0].addr_spec == "info@gemeente.test"

    # The outbox row is now a sent message on the contact, with the Message-ID that went out.
    msgs = wait_for(lambda: len([m for m in messages(client, contact["id"])
                                 if m["direction"] == "out" and m["status"] == "sent"]) == 2
                    and messages(client, contact["id"]), 10 * SLOW)
    assert msgs, messages(client, contact["id"])
    assert "<%s>" % msgs[1]["message_id"] in (ack["Message-ID"], mails[1]["Message-ID"])


def test_citizen_answer_threads_onto_the_contact_and_reopens_it(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver)
    first = citizen_mail("Grofvuil ophalen", "Wanneer komt de grofvuilophaling?\n")
    mailserver.send(CITIZEN, ["info@gemeente.test"], first)
    (contact,) = wait_contacts(client, 1)
    (ack,) = [m for m in wait_mail(mailserver, CITIZEN) if "ontvangen" in m["Subject"]]
    if contact["status"] == "escalated":
        client.action(contact["id"], "close", {"answer": "Op afspraak, zie de website."})
    else:
        client.action(contact["id"], "resolve", {"answer": "Op afspraak, zie de website."})

    # The citizen answers the acknowledgement: In-Reply-To and the token in the subject.
    answer = citizen_mail("Re: " + ack["Subject"], "Dank u, maar de website werkt niet.\n",
                          headers={"In-Reply-To": ack["Message-ID"],
                                   "References": ack["Message-ID"]})
    mailserver.send(CITIZEN, ["info@gemeente.test"], answer)
    ok = wait_for(lambda: client.contact(contact["id"])["status"] == "open", 15 * SLOW,
                  interval=0.2)
    assert ok, client.contact(contact["id"])
    assert len(email_contacts(client)) == 1, "the answer made a new contact"
    inbound = [m for m in messages(client, contact["id"]) if m["direction"] == "in"]
    assert [m["body"].strip() for m in inbound] == [
        "Wanneer komt de grofvuilophaling?", "Dank u, maar de website werkt niet."]
    history = [h["action"] for h in client.contact(contact["id"])["history"]]
    assert "reopen" in history

    # Without In-Reply-To, the token alone threads too, from the citizen's address.
    token_only = citizen_mail("Nog een vraag [loket %s]" % contact["reference"], "En nu?\n")
    mailserver.send(CITIZEN, ["info@gemeente.test"], token_only)
    assert wait_for(lambda: len([m for m in messages(client, contact["id"])
                                 if m["direction"] == "in"]) == 3, 15 * SLOW, interval=0.2)
    assert len(email_contacts(client)) == 1

    # References count up: from an address the contact does not know, a token is no key.
    other = citizen_mail("Ook mijn vraag [loket %s]" % contact["reference"], "Hallo\n",
                         sender="burger2@burger.test")
    mailserver.send("burger2@burger.test", ["info@gemeente.test"], other)
    wait_contacts(client, 2)
    assert len([m for m in messages(client, contact["id"]) if m["direction"] == "in"]) == 3


def test_staff_reply_with_pdf_arrives_intact(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver, rules=None)
    mailserver.send(CITIZEN, ["info@gemeente.test"],
                    citizen_mail("Uittreksel geboorteakte", "Graag een uittreksel.\n"))
    (contact,) = wait_contacts(client, 1)
    pdf = b"%PDF-1.4\n" + os.urandom(20000) + b"\n%%EOF\n"
    status, doc, _, raw = client.call(
        "POST", "/api/v1/contacts/%d/messages" % contact["id"],
        {"body": "Beste,\n\nIn bijlage vindt u het uittreksel.\n\nMet vriendelijke groeten",
         "attachments": [{"name": "uittreksel geboorteakte.pdf",
                          "content_type": "application/pdf",
                          "data": base64.b64encode(pdf).decode()}]},
        token=client.agent)
    assert status == 202, raw
    assert doc["status"] == "queued" and doc["reference"] == contact["reference"]
    (mail,) = wait_mail(mailserver, CITIZEN)
    assert contact["reference"] in mail["Subject"]
    assert mail["Auto-Submitted"] is None, "a staff answer is no automatic mail"
    (att,) = list(mail.iter_attachments())
    assert att.get_filename() == "uittreksel geboorteakte.pdf"
    assert att.get_content_type() == "application/pdf"
    assert hashlib.sha256(att.get_content()).hexdigest() == hashlib.sha256(pdf).hexdigest()
    sent = wait_for(lambda: [m for m in messages(client, contact["id"])
                             if m["direction"] == "out" and m["status"] == "sent"], 10 * SLOW)
    assert sent and sent[0]["attachments"][0]["size"] == len(pdf)


def test_out_of_office_is_registered_flagged_and_never_answered(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver)
    mailserver.send(CITIZEN, ["info@gemeente.test"],
                    citizen_mail("Afwezig: Uw vraag", "Ik ben afwezig tot maandag.\n",
                                 headers={"Auto-Submitted": "auto-replied"}))
    (contact,) = wait_contacts(client, 1)
    assert "automatic" in contact["tags"]
    assert contact["meta"]["automatic"] == "auto-submitted"
    # A normal mail after it is acknowledged: so nothing is merely slow.
    mailserver.send(CITIZEN, ["info@gemeente.test"], citizen_mail("Echte vraag", "Hallo\n"))
    wait_contacts(client, 2)
    mails = wait_mail(mailserver, CITIZEN)
    assert len(mails) == 1 and "Echte vraag" in mails[0]["Subject"]
    status, _, _, raw = client.call("POST", "/api/v1/contacts/%d/messages" % contact["id"],
                                    {"body": "Bedankt"}, token=client.agent)
    assert status == 409 and b"automatic" in raw


def test_same_mail_to_two_mailboxes_is_one_contact(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver, rules=None)
    raw = citizen_mail("Leefloon en huurpremie", "Kan ik beide krijgen?\n",
                       to="info@gemeente.test, welzijn@ocmw.test")
    mailserver.send(CITIZEN, ["info@gemeente.test", "welzijn@ocmw.test"], raw)
    assert wait_for(lambda: not mailserver.messages("info@gemeente.test") and
                    not mailserver.messages("welzijn@ocmw.test"), 15 * SLOW, interval=0.2)
    assert len(email_contacts(client)) == 1
    # Two different mails without Message-ID are both kept.
    for subject in ("Zonder id 1", "Zonder id 2"):
        mail = citizen_mail(subject, "x\n").replace(b"Message-ID:", b"X-Old-Id:")
        mailserver.append("info@gemeente.test", "INBOX", mail)
    wait_contacts(client, 3)


def test_staff_message_cannot_inject_headers(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver, rules=None)
    mailserver.send(CITIZEN, ["info@gemeente.test"], citizen_mail("Vraag", "Hallo\n"))
    (contact,) = wait_contacts(client, 1)
    status, _, _, raw = client.call(
        "POST", "/api/v1/contacts/%d/messages" % contact["id"],
        {"body": "x", "to": "burger1@burger.test\r\nBcc: burger2@burger.test"},
        token=client.agent)
    assert status == 422 and b"to:" in raw
    status, _, _, raw = client.call(
        "POST", "/api/v1/contacts/%d/messages" % contact["id"],
        {"body": "Antwoord", "subject": "Uw vraag\r\nBcc: burger2@burger.test"},
        token=client.agent)
    assert status == 202, raw
    (mail,) = wait_mail(mailserver, CITIZEN)
    assert mail["Bcc"] is None and "\n" not in mail["Subject"]
    assert mail["Subject"].startswith("Uw vraag")
    assert mailserver.messages("burger2@burger.test") == []


def test_example_config_documents_every_key(loketd):
    """The commented [plugin.chan_email] block of etc/loket.conf.example, switched on,
    passes `loketd -t`: every documented key exists and every default is valid."""
    with open(os.path.join(SRCDIR, "etc", "loket.conf.example")) as f:
        text = f.read()
    block = text[text.index(";[plugin.chan_email]"):]
    lines = [l[1:] for l in block.splitlines() if l.startswith(";") and not l.startswith("; ")]
    keys = [l.split("=", 1)[0].strip() for l in lines[1:]]
    d = loketd(plugins=["chan_email"], start=False)
    d.write_config(d.config() + "\n".join(lines) + "\n")
    r = d.check()
    assert r.returncode == 0, r.stderr
    # All 35 keys chan_email declares, mailbox3..8 being read like mailbox1 and 2.
    assert len(keys) == len(set(keys)) == 35 - 6, keys


def test_staff_message_bad_input_is_a_clear_problem(loketd):
    """Checked before anything is stored; without a sender for the channel the message
    is kept and marked failed, with the reason in the contact's history."""
    d = loketd(extra=example_units())
    client = Client(d)
    contact = client.create(channel="email", subject="Vraag", party={"email": CITIZEN})
    url = "/api/v1/contacts/%d/messages" % contact["id"]
    cases = [
        ({}, "body"),
        ({"body": ""}, "body"),
        ({"body": "x", "subject": 5}, "subject"),
        ({"body": "x", "to": "niet-een-adres"}, "to"),
        ({"body": "x", "attachments": {"name": "a"}}, "attachments"),
        ({"body": "x", "attachments": [{"name": "../etc/passwd", "data": "eA=="}]},
         "attachments[0].name"),
        ({"body": "x", "attachments": [{"name": "a.pdf", "data": "!!!"}]},
         "attachments[0].data"),
        ({"body": "x", "attachments": [{"name": "a.pdf", "content_type": "pdf",
                                        "data": "eA=="}]}, "attachments[0].content_type"),
        ({"body": "x", "attachments": [{"name": "a", "data": "eA=="}] * 11}, "attachments"),
    ]
    for body, field in cases:
        status, doc, _, raw = client.call("POST", url, body, token=client.agent)
        assert status == 422 and doc["detail"].startswith(field), (body, status, raw)
    status, _, _, _ = client.call("POST", "/api/v1/contacts/999999/messages", {"body": "x"},
                                  token=client.agent)
    assert status == 404
    assert [m for m in messages(client, contact["id"])] == []

    status, doc, _, raw = client.call("POST", url, {"body": "Goed", "to": "Burger1@Burger.TEST"},
                                      token=client.agent)
    assert status == 202 and doc["recipients"] == [CITIZEN], raw
    failed = wait_for(lambda: [m for m in messages(client, contact["id"])
                               if m["status"] == "failed"], 10 * SLOW, interval=0.1)
    assert failed, messages(client, contact["id"])
    history = client.contact(contact["id"])["history"]
    assert any(h["action"] == "message" and "failed" in (h["detail"] or "") for h in history)
    assert re.search(r'loket_outbox_total\{channel="email",result="failed"\} 1', client.metrics())


def test_imaps_and_starttls(loketd, mailserver):
    """imaps:// and STARTTLS (required) both read mail, the certificate checked against
    the CA given; a certificate nobody vouches for stops the mailbox, loudly."""
    base = "user=%%s@%%s password=%s organisation=%%s" % mailserver.password
    d, client = email_daemon(
        loketd, mailserver, rules=None, starttls="require", verify_tls="yes",
        ca_file=mailserver.tls_cert,
        mailbox1="info imaps://localhost:%d/INBOX " % mailserver.imaps_port
        + base % ("info", "gemeente.test", "gemeente"),
        mailbox2="welzijn imap://localhost:%d/INBOX " % mailserver.imap_port
        + base % ("welzijn", "ocmw.test", "ocmw"))
    mailserver.send(CITIZEN, ["info@gemeente.test"], citizen_mail("Over TLS", "imaps\n"))
    mailserver.send(CITIZEN, ["welzijn@ocmw.test"], citizen_mail("Met STARTTLS", "143\n"))
    got = wait_contacts(client, 2)
    assert sorted(c["subject"] for c in got) == ["Met STARTTLS", "Over TLS"]
    assert 'loket_email_mailbox_up{mailbox="info"} 1' in client.metrics()
    assert d.stop() == 0, d.log()[-3000:]  # a crash at shutdown must show

    d, client = email_daemon(
        loketd, mailserver, rules=None, verify_tls="yes",
        mailbox1="info imaps://localhost:%d/INBOX " % mailserver.imaps_port
        + base % ("info", "gemeente.test", "gemeente"), mailbox2="")
    mailserver.append("info@gemeente.test", "INBOX", citizen_mail("Blijft liggen", "x\n"))
    assert wait_for(lambda: re.search(r"mailbox unreachable mailbox=info.*(certificate|SSL)",
                                      d.log()), 10 * SLOW), d.log()
    assert email_contacts(client) == []
    assert len(mailserver.messages("info@gemeente.test")) == 1
    assert 'loket_email_mailbox_up{mailbox="info"} 0' in client.metrics()


def test_rules_replies_without_a_sender_are_dropped_and_said_once(loketd):
    """Without chan_email the default rules' acknowledgements have nobody to send them:
    nothing is queued, the contact's history does not claim a reply, and the log says so
    once, not per contact."""
    d = loketd(extra=example_units() + rules_section(DEFAULT_RULES))
    client = Client(d)
    for i in range(3):
        c = client.create(channel="web", subject="Vraag %d" % i, party={"email": CITIZEN})
        assert messages(client, c["id"]) == []
        details = [h.get("detail") or "" for h in client.contact(c["id"])["history"]]
        assert any("remind after 4h" in t for t in details), details
        assert not any("reply" in t for t in details), details
    assert len(re.findall(r"replies are dropped channel=email", d.log())) == 1, d.log()


def test_smtp_submission_with_starttls_and_auth(loketd, mailserver, tmp_path):
    """A submission port that takes mail only after STARTTLS and AUTH (Postfix asking
    Dovecot): the staff answers go out authenticated, each over a new TLS session of the
    same daemon, every one at the first try; a wrong password is no lost mail
    but a reply that waits, and the log says why without the password."""
    secret = tmp_path / "smtp.secret"
    secret.write_text(mailserver.password + "\n")
    tls = dict(rules=None, smtp_port=str(mailserver.submission_port),
               smtp_user="info@gemeente.test", smtp_password_file=str(secret),
               starttls="require", verify_tls="no", timeout="10s")
    d, client = email_daemon(loketd, mailserver, **tls)
    mailserver.send(CITIZEN, ["info@gemeente.test"], citizen_mail("Vraag", "Hallo\n"))
    (contact,) = wait_contacts(client, 1)
    status, _, _, raw = client.call("POST", "/api/v1/contacts/%d/messages" % contact["id"],
                                    {"body": "Antwoord over TLS"}, token=client.agent)
    assert status == 202, raw
    (mail,) = wait_mail(mailserver, CITIZEN)
    assert mail.get_body(("plain",)).get_content().strip() == "Antwoord over TLS"
    assert "sasl_username=info@gemeente.test" in mailserver.postfix_log()
    # More STARTTLS sessions of the same daemon, one per answer. libESMTP's own context was
    # freed by the first (ASan: heap-use-after-free in SSL_new); and with TLS 1.3 about one
    # in three stalled after the handshake (the server's session tickets read as the answer
    # to EHLO) until the timeout, and waited for a retry. All go out at the first try.
    for i in range(2, 8):
        status, _, _, raw = client.call("POST", "/api/v1/contacts/%d/messages" % contact["id"],
                                        {"body": "Antwoord %d over TLS" % i},
                                        token=client.agent)
        assert status == 202, raw
        wait_mail(mailserver, CITIZEN, count=i)
    assert "result=\"retry\"" not in client.metrics(), d.log()[-2000:]
    assert "not sent" not in d.log(), d.log()[-2000:]
    assert d.running(), d.log()[-2000:]
    assert d.stop() == 0, d.log()[-3000:]  # a crash at shutdown must show

    secret.write_text("fout\n")
    mailserver.clear(CITIZEN)
    # One attempt: a retry would sit in the servers' delay for a wrong password when the
    # daemon stops, and the stop would go on without the sender.
    d, client = email_daemon(loketd, mailserver, retry_min="1h", retry_max="1h", **tls)
    mailserver.send(CITIZEN, ["info@gemeente.test"], citizen_mail("Tweede vraag", "Hallo\n"))
    (contact,) = wait_contacts(client, 1)
    client.call("POST", "/api/v1/contacts/%d/messages" % contact["id"], {"body": "x"},
                token=client.agent)
    # Dovecot answers a wrong password after its auth_failure_delay, Postfix after its own.
    assert wait_for(lambda: re.search(r'loket_outbox_total\{channel="email",result="retry"\}',
                                      client.metrics()), 40 * SLOW)
    # How the refusal reads depends on the server (a 535 to AUTH, or the connection
    # closed on the client); either way the reply waits and no password is logged.
    assert re.search(r"not sent outbox=\d+ channel=email result=retry error=\"smtp", d.log()), \
        d.log()[-2000:]
    assert "fout" not in d.log()
    assert [m["status"] for m in messages(client, contact["id"]) if m["direction"] == "out"] \
        == ["queued"]
    assert mailserver.messages(CITIZEN) == []
    assert d.running(), d.log()[-2000:]
    assert d.stop() == 0, d.log()[-2000:]


def test_idle_brings_new_mail_without_waiting_for_the_poll(loketd, mailserver):
    """With IDLE a new mail is registered at once although the poll is a minute; with
    idle = no the poll finds it."""
    d, client = email_daemon(loketd, mailserver, rules=None, poll="60s")
    assert wait_for(lambda: "mailbox open mailbox=info waiting=idle" in d.log(), 10 * SLOW)
    t0 = time.monotonic()
    mailserver.send(CITIZEN, ["info@gemeente.test"], citizen_mail("Via IDLE", "x\n"))
    wait_contacts(client, 1, timeout=20)
    assert time.monotonic() - t0 < 30, "registered only by the poll"
    assert d.stop() == 0, d.log()[-3000:]  # a crash at shutdown must show

    d, client = email_daemon(loketd, mailserver, rules=None, idle="no", poll="1s")
    assert wait_for(lambda: "mailbox open mailbox=info waiting=poll" in d.log(), 10 * SLOW)
    mailserver.send(CITIZEN, ["info@gemeente.test"], citizen_mail("Via poll", "x\n"))
    (c,) = wait_contacts(client, 1)
    assert c["subject"] == "Via poll"


def test_a_mail_server_that_hangs_does_not_hold_up_the_stop(loketd, mailserver):
    """An SMTP server that accepts the connection and never greets: SIGTERM still ends
    loketd in seconds, exit 0, and the reply stays queued for the next start."""
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    try:
        d, client = email_daemon(loketd, mailserver, rules=None,
                                 smtp_port=str(hang.getsockname()[1]), timeout="60s")
        mailserver.send(CITIZEN, ["info@gemeente.test"], citizen_mail("Vraag", "x\n"))
        (contact,) = wait_contacts(client, 1)
        status, _, _, raw = client.call("POST", "/api/v1/contacts/%d/messages" % contact["id"],
                                        {"body": "Antwoord"}, token=client.agent)
        assert status == 202, raw
        conn, _ = hang.accept()  # the sender is now waiting for a greeting
        t0 = time.monotonic()
        assert d.stop() == 0, d.log()[-2000:]
        assert time.monotonic() - t0 < 8 * SLOW
        assert "the sender still waits for its mail server" in d.log()
        conn.close()
    finally:
        hang.close()
    d.proc = None
    d.close()
    d.start()
    assert [m["status"] for m in messages(client, contact["id"])
            if m["direction"] == "out"] == ["queued"]


def test_the_ocmw_answers_as_the_ocmw(loketd, mailserver):
    """A mail to the welfare centre's address is the OCMW's contact (its department), and
    its acknowledgement comes from that address, signed with that mailbox's name."""
    d, client = email_daemon(loketd, mailserver)
    mailserver.send(CITIZEN, ["welzijn@ocmw.test"],
                    citizen_mail("Vraag over leefloon", "Heb ik recht op een leefloon?\n",
                                 to="welzijn@ocmw.test"))
    (contact,) = wait_contacts(client, 1)
    assert (contact["organisation"], contact["department"]) == ("ocmw", "sociale_dienst")
    (ack,) = [m for m in wait_mail(mailserver, CITIZEN) if "ontvangen" in m["Subject"]]
    assert ack["From"].addresses[0].addr_spec == "welzijn@ocmw.test"
    assert ack["From"].addresses[0].display_name == "OCMW Voorbeeld"
    assert "OCMW Voorbeeld" in ack.get_body(("plain",)).get_content()


def test_reply_rules_run_on_the_threaded_contact(loketd, mailserver, tmp_path):
    """The documented reply rule (docs/rules.md): the citizen's answer reopens the
    contact, the rule tags it and raises its priority, with a reminder to escalate."""
    rules = tmp_path / "rules"
    rules.mkdir()
    with open(os.path.join(SRCDIR, "docs", "rules.md")) as f:
        doc = f.read()
    block = re.search(r'```lua\n(loket\.on\("reply".*?)```', doc, re.S).group(1)
    (rules / "50-reply.lua").write_text(block)
    d, client = email_daemon(loketd, mailserver, rules=str(rules))
    first = citizen_mail("Parkeerkaart", "Hoe vraag ik een bewonerskaart aan?\n")
    mailserver.send(CITIZEN, ["info@gemeente.test"], first)
    (contact,) = wait_contacts(client, 1)
    client.action(contact["id"], "resolve", {"answer": "Via het e-loket."})
    answer = citizen_mail("Re: Parkeerkaart", "Het e-loket geeft een fout.\n",
                          headers={"In-Reply-To": "<%s>" % messages(client, contact["id"])[0][
                              "message_id"]})
    mailserver.send(CITIZEN, ["info@gemeente.test"], answer)
    done = wait_for(lambda: "antwoord-burger" in client.contact(contact["id"])["tags"]
                    and client.contact(contact["id"]), 15 * SLOW, interval=0.2)
    assert done, client.contact(contact["id"])
    assert done["status"] == "open" and done["priority"] == "high"
    assert any(h["actor"].startswith("rule:50-reply.lua") for h in done["history"])
