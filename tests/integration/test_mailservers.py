"""The mail server fixtures themselves: real Postfix SMTP -> Dovecot LMTP -> IMAP.

What a user of the fixture sees: mail sent over SMTP arrives in the right INBOX with the
same Subject and body, APPEND creates folders, Dovecot restarts keep mail, and a stopped
Postfix refuses connections until it is started again.
"""

import email
import email.policy
import smtplib
import time
import uuid

import pytest

from conftest import wait_for
from mail_fixtures import mailserver  # noqa: F401


def make_mail(to, subject, body, sender="burger1@burger.test"):
    msg_id = "<%s@burger.test>" % uuid.uuid4().hex
    raw = ("From: Burger Een <%s>\r\n"
           "To: %s\r\n"
           "Subject: %s\r\n"
           "Message-ID: %s\r\n"
           "Date: Fri, 01 Mar 2024 10:00:00 +0100\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "\r\n"
           "%s\r\n" % (sender, to, subject, msg_id, body)).encode()
    return raw, msg_id


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def by_message_id(msgs, msg_id):
    return [m for m in msgs if parse(m[1])["Message-ID"] == msg_id]


def test_smtp_mail_arrives_in_inbox(mailserver):  # noqa: F811
    raw, msg_id = make_mail("info@gemeente.test", "Vraag over het containerpark",
                            "Wanneer is het containerpark open op zaterdag?")
    refused = mailserver.send("burger1@burger.test", ["info@gemeente.test"], raw)
    assert refused == {}

    deadline = time.monotonic() + 30
    while True:
        msgs = mailserver.messages("info@gemeente.test")
        mine = by_message_id(msgs, msg_id)
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(mine) == 1, "mail did not arrive; log:\n" + mailserver.logs()
    uid, got, flags = mine[0]
    msg = parse(got)
    assert msg["Subject"] == "Vraag over het containerpark"
    assert msg["From"] == "Burger Een <burger1@burger.test>"
    assert msg.get_content().strip() == "Wanneer is het containerpark open op zaterdag?"
    # Delivered by Postfix (a Received header) into a fresh, unseen message.
    assert msg["Received"] is not None
    assert "\\Seen" not in flags
    assert uid > 0
    # postlogd writes the log asynchronously.
    assert wait_for(lambda: "postfix/lmtp" in mailserver.postfix_log(), 10), \
        mailserver.postfix_log()


def test_mail_goes_to_that_user_only(mailserver):  # noqa: F811
    for u in ("welzijn@ocmw.test", "burger2@burger.test"):
        mailserver.clear(u)
    raw, msg_id = make_mail("welzijn@ocmw.test", "Aanvraag leefloon", "Graag een afspraak.")
    mailserver.send("burger2@burger.test", "welzijn@ocmw.test", raw)

    msgs = mailserver.wait_messages("welzijn@ocmw.test", "INBOX", 1)
    assert len(msgs) == 1
    assert parse(msgs[0][1])["Subject"] == "Aanvraag leefloon"
    assert by_message_id(mailserver.messages("info@gemeente.test"), msg_id) == []
    assert mailserver.messages("burger2@burger.test") == []


def test_several_recipients_each_get_a_copy(mailserver):  # noqa: F811
    users = ["burger3@burger.test", "burger4@burger.test"]
    for u in users:
        mailserver.clear(u)
    raw, msg_id = make_mail(", ".join(users), "Nieuwsbrief", "Beste inwoners")
    mailserver.send("info@gemeente.test", users, raw)
    for u in users:
        msgs = mailserver.wait_messages(u, "INBOX", 1)
        assert [parse(m[1])["Message-ID"] for m in msgs] == [msg_id]


def test_nothing_leaves_the_machine(mailserver):  # noqa: F811
    """default_transport is error: Postfix refuses outside recipients at RCPT TO."""
    raw, _ = make_mail("someone@example.org", "Weg", "Mag niet buiten de machine")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        mailserver.send("info@gemeente.test", ["someone@example.org"], raw)
    code, text = e.value.recipients["someone@example.org"]
    assert code == 550 and b"nothing leaves" in text


def test_append_to_new_folder_then_list(mailserver):  # noqa: F811
    user = "burger5@burger.test"
    mailserver.clear(user)
    assert "Archief/2024" not in mailserver.folders(user)
    raw, msg_id = make_mail(user, "Bewaard", "In het archief")
    mailserver.append(user, "Archief/2024", raw, flags=["\\Seen"])
    mailserver.append(user, "Archief/2024", make_mail(user, "Tweede", "ook")[0])

    folders = mailserver.folders(user)
    assert "INBOX" in folders
    assert "Archief/2024" in folders
    msgs = mailserver.messages(user, "Archief/2024")
    assert [parse(m[1])["Subject"] for m in msgs] == ["Bewaard", "Tweede"]
    assert "\\Seen" in msgs[0][2]
    assert "\\Seen" not in msgs[1][2]
    assert msgs[0][1].replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")

    mailserver.clear(user)
    assert mailserver.messages(user, "Archief/2024") == []
    assert mailserver.messages(user) == []


def test_imap_has_move_and_idle(mailserver):  # noqa: F811
    c = mailserver.imap("info@gemeente.test")
    try:
        typ, data = c.capability()  # after login: imaplib keeps only the greeting's list
        assert typ == "OK"
        caps = data[0].decode().upper().split()
    finally:
        c.logout()
    assert "MOVE" in caps and "IDLE" in caps and "UIDPLUS" in caps, caps


def test_restart_dovecot_keeps_mail(mailserver):  # noqa: F811
    user = "info@gemeente.test"
    raw, msg_id = make_mail(user, "Voor de herstart", "blijft bewaard")
    mailserver.append(user, "INBOX", raw)
    before = mailserver.messages(user)
    assert by_message_id(before, msg_id)

    mailserver.restart_dovecot()

    after = mailserver.messages(user)
    assert [(u, r) for u, r, _ in after] == [(u, r) for u, r, _ in before]
    # And delivery still works after the restart.
    raw2, msg_id2 = make_mail(user, "Na de herstart", "komt aan")
    mailserver.send("burger1@burger.test", user, raw2)
    msgs = mailserver.wait_messages(user, "INBOX", len(after) + 1)
    assert by_message_id(msgs, msg_id2)


def test_stopped_postfix_refuses_then_works_again(mailserver):  # noqa: F811
    user = "bench@gemeente.test"
    mailserver.clear(user)
    mailserver.stop_postfix()
    try:
        raw, _ = make_mail(user, "Niemand luistert", "geweigerd")
        with pytest.raises(ConnectionRefusedError):
            mailserver.send("burger1@burger.test", user, raw, timeout=5)
    finally:
        mailserver.start_postfix()

    raw, msg_id = make_mail(user, "Terug in dienst", "aanvaard")
    mailserver.send("burger1@burger.test", user, raw)
    msgs = mailserver.wait_messages(user, "INBOX", 1)
    assert [parse(m[1])["Message-ID"] for m in msgs] == [msg_id]
