"""The email channel when things break: Dovecot restarting during intake, loketd killed
with -9 in the middle of a mailbox, Postfix down while a reply waits, acknowledge = flag
across a restart, and the daily cap of automatic replies.

Exactly once is the point throughout: every mail becomes one contact, none is lost and
none is registered twice, whatever happens between the register's commit and the move
(or flag) on the IMAP server.
"""

import datetime
import email
import email.policy
import os
import re
import signal
import socket
import threading
import time
import uuid

from conftest import SLOW, wait_for
from email_support import (CITIZEN, citizen_mail, email_contacts, email_daemon, messages,
                           wait_contacts, wait_mail)
from mail_fixtures import _children_of, mailserver  # noqa: F401
from test_rules_support import DEFAULT_RULES

INFO = "info@gemeente.test"


# helpers --------------------------------------------------------------------------------

def bulk_append(ms, user, raws, folder="INBOX", flags=None):
    """APPENDs every mail on one IMAP connection (one login instead of one per mail);
    returns the UIDs Dovecot gave them (APPENDUID), in order."""
    uids = []
    c = ms.imap(user)
    try:
        for raw in raws:
            typ, data = c.append(folder, flags, None, raw)
            assert typ == "OK", "APPEND to %s: %r" % (folder, data)
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            uids.append(int(m.group(1)) if m else None)
    finally:
        c.logout()
    return uids


def numbered_mails(prefix, n):
    """n citizen mails with unique subjects "PREFIX NNNN" and Message-IDs; (subjects, raws)."""
    subjects = ["%s %04d" % (prefix, i) for i in range(n)]
    raws = [citizen_mail(s, "Vraag nummer %d.\n" % i,
                         msgid="%s-%04d-%s@burger.test" % (prefix, i, uuid.uuid4().hex[:8]))
            for i, s in enumerate(subjects)]
    return subjects, raws


def intake_counts(client):
    """{result: n} of loket_email_intake_total for the info mailbox, since this start."""
    out = {}
    for m in re.finditer(r'^loket_email_intake_total\{mailbox="info",result="([a-z]+)"\} (\S+)$',
                         client.metrics(), re.M):
        out[m.group(1)] = int(float(m.group(2)))
    return out


def metric(client, name, **labels):
    """The value of one sample of /metrics, or 0 when the series does not exist yet."""
    text = client.metrics()
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all('%s="%s"' % kv in line for kv in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def header(raw, name):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    v = msg[name]
    return str(v) if v is not None else None


def folder_ids(ms, user, folder):
    """The Message-IDs of the mails in folder (a list: duplicates show)."""
    return [header(raw, "Message-ID") for _, raw, _ in ms.messages(user, folder)]


def wait_inbox_empty(ms, d, timeout):
    ok = wait_for(lambda: not ms.messages(INFO), timeout * SLOW, interval=0.5)
    assert ok, "INBOX still holds %d mails after %ss\n%s\n%s" % (
        len(ms.messages(INFO)), timeout, d.log()[-4000:], ms.logs())


def assert_exactly_once(client, subjects, what):
    contacts = email_contacts(client)
    got = [c["subject"] for c in contacts]
    dup = sorted({s for s in got if got.count(s) > 1})
    missing = sorted(set(subjects) - set(got))
    extra = sorted(set(got) - set(subjects))
    assert not dup and not missing and not extra and len(got) == len(subjects), (
        "%s: %d contacts for %d mails; twice: %s; lost: %s; unknown: %s\n%s" % (
            what, len(got), len(subjects), dup[:10], missing[:10], extra[:10],
            client.d.log()[-4000:]))
    return contacts


def maildir_inbox_count(ms, user):
    """Mails in user's INBOX as files in the maildir (readable while Dovecot is down)."""
    box = os.path.join(ms.mail_dir, *reversed(ms.address(user).split("@")))
    return sum(len(os.listdir(os.path.join(box, sub))) for sub in ("cur", "new"))


def settled(fn, quiet=1.0, timeout=20):
    """fn() once it has given the same answer for `quiet` seconds."""
    last, since = fn(), time.monotonic()
    deadline = since + timeout * SLOW
    while time.monotonic() < deadline:
        time.sleep(0.1)
        v = fn()
        if v != last:
            last, since = v, time.monotonic()
        elif time.monotonic() - since >= quiet * SLOW:
            return v
    raise AssertionError("%r kept changing for %ss" % (fn, timeout))


def stop_dovecot_now(ms):
    """Stops Dovecot at this instant: every Dovecot process is frozen (SIGSTOP) first, so
    the intake cannot run on while Dovecot shuts down, then told to stop (SIGTERM) and let
    go; each finishes the IMAP command it is in (no MOVE is cut in half) and exits."""
    master = ms._dovecot_pid()
    pids = [master] + sorted(_children_of([master]))
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    ms.stop_dovecot()


def stored_email_contacts(d):
    """Email contacts in the register's files, read with loketd down (after kill -9)."""
    con = d.db()
    try:
        return con.execute("SELECT count(*) FROM contacts WHERE channel = 'email'").fetchone()[0]
    finally:
        con.close()


# tests ----------------------------------------------------------------------------------

def test_dovecot_restart_during_intake_loses_and_doubles_nothing(loketd, mailserver):
    # Enough mails that the fault lands mid-intake also when this test process gets the CPU
    # late (200 were all read once before a loaded machine let it stop Dovecot).
    n = 600
    d, client = email_daemon(loketd, mailserver, rules=None, start=False)
    subjects, raws = numbered_mails("herstart", n)
    bulk_append(mailserver, INFO, raws)
    ids = {header(r, "Message-ID") for r in raws}
    d.start()
    try:
        seen = wait_for(lambda: sum(intake_counts(client).values()) >= 10 and
                        intake_counts(client), 30 * SLOW, interval=0.01)
        assert seen, "intake did not start\n" + d.log()[-3000:]
        stop_dovecot_now(mailserver)
        # With Dovecot down, what was read is still registered but cannot be moved.
        registered = settled(lambda: len(email_contacts(client)))
        waiting = maildir_inbox_count(mailserver, INFO)
    finally:
        mailserver.start_dovecot()
    # The fault landed in the middle of the intake: mails were still to be read.
    assert 0 < registered < n and waiting > 0, (
        "Dovecot went down with %d of %d mails registered and %d in the INBOX: the fault "
        "missed the intake window" % (registered, n, waiting))
    registered_not_moved = waiting - (n - registered)
    assert registered_not_moved >= 0, (waiting, registered)
    wait_inbox_empty(mailserver, d, 60)
    contacts = assert_exactly_once(client, subjects, "after a Dovecot restart")
    # Every Message-ID once in the register, as the inbound message of its contact.
    stored = [m["message_id"] for c in contacts for m in messages(client, c["id"])
              if m["direction"] == "in"]
    assert len(stored) == n and {"<%s>" % s for s in stored} == ids, (
        "%d inbound messages, %d distinct" % (len(stored), len(set(stored))))
    processed = folder_ids(mailserver, INFO, "Processed")
    assert sorted(processed) == sorted(ids), (
        "Processed holds %d mails (%d distinct) for %d registered" % (
            len(processed), len(set(processed)), n))
    # Each mail made one contact; the ones registered but not moved when Dovecot went down
    # were read again, found in the register and only moved.
    counts = intake_counts(client)
    assert counts.get("contact") == n and \
        counts.get("duplicate", 0) == registered_not_moved, (counts, registered_not_moved)
    assert re.search(r"(mailbox unreachable|cannot acknowledge|cannot fetch|idle failed) "
                     r"mailbox=info\b", d.log()), d.log()[-3000:]
    assert d.running(), d.log()[-3000:]


def test_kill_9_during_intake_loses_and_doubles_nothing(loketd, mailserver):
    n = 500
    d, client = email_daemon(loketd, mailserver, rules=None, start=False)
    subjects, raws = numbered_mails("kill", n)
    bulk_append(mailserver, INFO, raws)
    d.start()
    seen = wait_for(lambda: sum(intake_counts(client).values()) >= 50 and
                    intake_counts(client), 60 * SLOW, interval=0.01)
    assert seen, "intake did not start\n" + d.log()[-3000:]
    d.proc.kill()
    d.proc.wait()
    # What the kill left: contacts durable in the register, mails not yet moved.
    registered = stored_email_contacts(d)
    waiting = settled(lambda: maildir_inbox_count(mailserver, INFO), quiet=0.5)
    assert 0 < registered < n and waiting > 0, (
        "killed with %d of %d mails registered and %d in the INBOX: the kill missed the "
        "intake window" % (registered, n, waiting))
    registered_not_moved = waiting - (n - registered)
    assert registered_not_moved >= 0, (waiting, registered)
    d.close()
    d.proc = None
    d.start()
    wait_inbox_empty(mailserver, d, 120)
    assert_exactly_once(client, subjects, "after kill -9 at %d mails registered" % registered)
    processed = folder_ids(mailserver, INFO, "Processed")
    assert len(processed) == n and len(set(processed)) == n, (
        "Processed holds %d mails (%d distinct), expected %d" % (
            len(processed), len(set(processed)), n))
    # After the restart: the mails never registered become contacts; the ones registered
    # before the kill but not moved are found in the register and only moved now.
    after = intake_counts(client)
    assert after.get("contact", 0) == n - registered and \
        after.get("duplicate", 0) == registered_not_moved, (after, registered, waiting)
    print("killed with %d registered, %d waiting; after the restart: %s" % (
        registered, waiting, after))


def test_reply_waits_for_postfix_and_goes_out_once(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver, rules=None)
    mailserver.append(INFO, "INBOX", citizen_mail("Vraag over de bibliotheek",
                                                  "Is de bib open op zondag?\n"))
    (contact,) = wait_contacts(client, 1)
    mailserver.stop_postfix()
    try:
        status, doc, _, raw = client.call(
            "POST", "/api/v1/contacts/%d/messages" % contact["id"],
            {"body": "Beste,\n\nNee, op zondag is de bibliotheek gesloten."},
            token=client.agent)
        assert status == 202, raw
        assert doc["status"] == "queued"
        retried = wait_for(lambda: metric(client, "loket_outbox_total", channel="email",
                                          result="retry") >= 2, 20 * SLOW, interval=0.2)
        assert retried, "no retries counted while Postfix is down\n" + client.metrics()
        out = [m for m in messages(client, contact["id"]) if m["direction"] == "out"]
        assert [m["status"] for m in out] == ["queued"], out
        assert mailserver.messages(CITIZEN) == []
    finally:
        mailserver.start_postfix()
    (mail,) = wait_mail(mailserver, CITIZEN, timeout=30)
    assert contact["reference"] in mail["Subject"]
    assert "gesloten" in mail.get_body(("plain",)).get_content()
    sent = wait_for(lambda: [m for m in messages(client, contact["id"])
                             if m["direction"] == "out" and m["status"] == "sent"],
                    15 * SLOW, interval=0.2)
    assert sent, messages(client, contact["id"])
    assert "<%s>" % sent[0]["message_id"] == mail["Message-ID"]
    # Nothing more comes: the retries stop once it went out.
    time.sleep(4 * SLOW)
    assert len(mailserver.messages(CITIZEN)) == 1, "the reply arrived more than once"
    out = [m for m in messages(client, contact["id"]) if m["direction"] == "out"]
    assert len(out) == 1 and out[0]["status"] == "sent", out
    assert metric(client, "loket_outbox_total", channel="email", result="sent") == 1


def test_acknowledge_flag_keeps_mail_in_inbox_and_registers_once(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver, rules=None, acknowledge="flag", start=False)
    subjects, raws = numbered_mails("vlag", 3)
    uids = bulk_append(mailserver, INFO, raws)
    d.start()
    wait_contacts(client, 3)

    def all_flagged():
        msgs = mailserver.messages(INFO)
        return len(msgs) == 3 and all("$Loket" in f for _, _, f in msgs)

    assert wait_for(all_flagged, 15 * SLOW, interval=0.2), mailserver.messages(INFO)
    assert "Processed" not in mailserver.folders(INFO) or \
        mailserver.messages(INFO, "Processed") == []
    assert d.stop() == 0, d.log()[-3000:]
    d.close()
    d.proc = None

    # While loketd is down, one mail loses its keyword (as when loketd died between the
    # register's commit and the STORE): it is read again, found in the register, flagged.
    c = mailserver.imap(INFO)
    try:
        c.select("INBOX")
        typ, data = c.uid("STORE", str(uids[0]), "-FLAGS.SILENT", "($Loket)")
        assert typ == "OK", data
    finally:
        c.logout()
    assert "$Loket" not in mailserver.messages(INFO)[0][2]
    d.start()
    # A new mail after the restart shows the daemon reads the mailbox again.
    new_subjects, new_raws = numbered_mails("vlag-nieuw", 1)
    bulk_append(mailserver, INFO, new_raws)
    wait_contacts(client, 4)
    assert wait_for(lambda: len(mailserver.messages(INFO)) == 4 and
                    all("$Loket" in f for _, _, f in mailserver.messages(INFO)),
                    15 * SLOW, interval=0.2), mailserver.messages(INFO)
    time.sleep(2.5 * SLOW)  # two more polls
    assert_exactly_once(client, subjects + new_subjects, "acknowledge = flag, restarted")
    counts = intake_counts(client)
    assert counts.get("duplicate") == 1 and counts.get("contact") == 1, counts


def test_automatic_replies_are_capped_per_address_per_day(loketd, mailserver):
    d, client = email_daemon(loketd, mailserver, rules=DEFAULT_RULES, ack_per_day="2",
                             start=False)
    subjects, raws = numbered_mails("limiet", 4)
    bulk_append(mailserver, INFO, raws)
    d.start()
    contacts = wait_contacts(client, 4)
    assert len(contacts) == 4
    acks = wait_mail(mailserver, CITIZEN, count=2)

    def settled():
        outs = [m for c in contacts for m in messages(client, c["id"])
                if m["direction"] == "out"]
        return len(outs) == 4 and all(m["status"] in ("sent", "failed") for m in outs) and outs

    outs = wait_for(settled, 20 * SLOW, interval=0.3)
    assert outs, [m for c in contacts for m in messages(client, c["id"])]
    time.sleep(3 * SLOW)  # retry_max is 2 s: anything still coming would be here now
    acks = mailserver.messages(CITIZEN)
    outs = [m for c in contacts for m in messages(client, c["id"]) if m["direction"] == "out"]
    assert len(acks) == 2, (
        "%d acknowledgements reached %s with ack_per_day = 2: %s\noutbox: %s\nlog:\n%s" % (
            len(acks), CITIZEN, [header(raw, "Subject") for _, raw, _ in acks],
            [(m["contact_id"], m["status"], m["at"], m.get("meta")) for m in outs],
            "\n".join(l for l in d.log().splitlines() if "outbox" in l or "send" in l or
                      "not sent" in l)[-3000:]))
    assert sorted(m["status"] for m in outs) == ["failed", "failed", "sent", "sent"], [
        (m["status"], m.get("meta")) for m in outs]


def test_automatic_replies_are_capped_when_mails_come_one_by_one(loketd, mailserver):
    """The same cap with each mail waiting for the previous acknowledgement to settle: this
    shows the cap itself works, so that a failure of the test above is about mails that
    arrive together (one poll, one outbox batch)."""
    d, client = email_daemon(loketd, mailserver, rules=DEFAULT_RULES, ack_per_day="2")
    subjects, raws = numbered_mails("een-voor-een", 4)
    for i, raw in enumerate(raws):
        bulk_append(mailserver, INFO, [raw])
        contacts = wait_contacts(client, i + 1)

        def settled():
            outs = [m for c in contacts for m in messages(client, c["id"])
                    if m["direction"] == "out"]
            return (len(outs) == i + 1 and
                    all(m["status"] in ("sent", "failed") for m in outs) and outs)

        assert wait_for(settled, 20 * SLOW, interval=0.2), d.log()[-3000:]
    time.sleep(3 * SLOW)
    assert len(mailserver.messages(CITIZEN)) == 2
    outs = [m for c in email_contacts(client) for m in messages(client, c["id"])
            if m["direction"] == "out"]
    assert sorted(m["status"] for m in outs) == ["failed", "failed", "sent", "sent"], outs


class RefusingSmtp:
    """An SMTP server on loopback that refuses every recipient with a 5xx (as a server
    does for a mailbox that does not exist); counts the sessions and RCPTs it saw."""

    def __init__(self, code=550, text="5.1.1 <burger1@burger.test>: Recipient address rejected"):
        self.code, self.text = code, text
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.sessions = 0
        self.rcpts = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.sessions += 1
            with conn:
                conn.settimeout(10)
                f = conn.makefile("rwb")
                try:
                    f.write(b"220 weigeraar.test ESMTP\r\n")
                    f.flush()
                    for line in f:
                        cmd = line.strip().upper()
                        if cmd.startswith(b"EHLO"):
                            f.write(b"250-weigeraar.test\r\n250 8BITMIME\r\n")
                        elif cmd.startswith(b"RCPT"):
                            self.rcpts += 1
                            f.write(b"%d %s\r\n" % (self.code, self.text.encode()))
                        elif cmd.startswith(b"QUIT"):
                            f.write(b"221 bye\r\n")
                            f.flush()
                            break
                        elif cmd.startswith(b"DATA"):
                            f.write(b"554 no valid recipients\r\n")
                        else:
                            f.write(b"250 ok\r\n")
                        f.flush()
                except OSError:
                    pass

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def test_smtp_5xx_ends_delivery_as_failed(loketd, mailserver):
    """A server that refuses the recipient with a 5xx is a permanent answer: the reply is
    tried once, marked failed (on the message, in the history, in /metrics), not retried,
    and the log says why without the address."""
    smtp = RefusingSmtp()
    try:
        d, client = email_daemon(loketd, mailserver, rules=None, smtp_port=str(smtp.port))
        mailserver.append(INFO, "INBOX", citizen_mail("Vraag over de markt", "Wanneer?\n"))
        (contact,) = wait_contacts(client, 1)
        status, doc, _, raw = client.call(
            "POST", "/api/v1/contacts/%d/messages" % contact["id"],
            {"body": "Elke vrijdag."}, token=client.agent)
        assert status == 202 and doc["status"] == "queued", raw
        failed = wait_for(lambda: [m for m in messages(client, contact["id"])
                                   if m["direction"] == "out" and m["status"] == "failed"],
                          15 * SLOW, interval=0.2)
        assert failed, (messages(client, contact["id"]), d.log()[-2000:])
        # retry_min is 1 s, retry_max 2 s: a retry would have come by now.
        time.sleep(3 * SLOW)
        assert smtp.sessions == 1 and smtp.rcpts == 1, (smtp.sessions, smtp.rcpts)
        assert metric(client, "loket_outbox_total", channel="email", result="failed") == 1
        assert metric(client, "loket_outbox_total", channel="email", result="retry") == 0
        history = client.contact(contact["id"])["history"]
        assert any(h["action"] == "message" and "failed" in (h["detail"] or "")
                   for h in history), history
        assert re.search(r"not sent outbox=\d+ channel=email result=failed error=\".*550",
                         d.log()), d.log()[-2000:]
        assert CITIZEN not in "\n".join(l for l in d.log().splitlines() if "not sent" in l)
    finally:
        smtp.close()


def test_mailbox_retry_backs_off(loketd, mailserver):
    """A mailbox that cannot be reached is tried again after 1 s, then 2 s, then 4 s (up to
    a minute), each try logged with its wait; once the server is back the mail comes in."""
    d, client = email_daemon(loketd, mailserver, rules=None, mailbox2="", start=False)
    mailserver.stop_dovecot()
    try:
        d.start()
        pattern = re.compile(r"^(\S+)Z warn \S+ mailbox unreachable mailbox=info "
                             r"retry_in=(\d+)ms", re.M)
        tries = wait_for(lambda: len(pattern.findall(d.log())) >= 3 and
                         pattern.findall(d.log()), 20 * SLOW, interval=0.2)
        assert tries, d.log()[-3000:]
        waits = [int(w) for _, w in tries[:3]]
        assert waits == [1000, 2000, 4000], waits
        at = [datetime.datetime.fromisoformat(t) for t, _ in tries[:3]]
        gaps = [(b - a).total_seconds() for a, b in zip(at, at[1:])]
        for gap, wait in zip(gaps, waits):
            assert gap >= wait / 1000 - 0.1, (gaps, waits)
        assert 'loket_email_mailbox_up{mailbox="info"} 0' in client.metrics()
    finally:
        mailserver.start_dovecot()
    mailserver.append(INFO, "INBOX", citizen_mail("Na de storing", "Hallo\n"))
    (c,) = wait_contacts(client, 1, timeout=30)
    assert c["subject"] == "Na de storing"
    assert 'loket_email_mailbox_up{mailbox="info"} 1' in client.metrics()
