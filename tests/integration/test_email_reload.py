"""chan_email across reloads and on the wire: a reload (SIGHUP) while mail flows through
the real Postfix and Dovecot loses nothing and reads no freed memory (the mailbox and
sender threads keep settings of their own); the IMAP keyword is checked as an atom before
it can reach a command; and no password goes over a connection without TLS unless the
admin says so.

Run under the sanitizer build too (scripts/check --sanitizers): there, a thread reading a
freed config value aborts loketd, and these tests see it.
"""

import re
import signal
import socket
import threading
import time
import uuid

from conftest import SLOW, line_of, wait_for
from email_support import (CITIZEN, citizen_mail, email_conf, email_contacts, email_daemon,
                           wait_contacts)
from mail_fixtures import mailserver  # noqa: F401
from test_rules_support import DEFAULT_RULES, example_units, rules_section

INFO = "info@gemeente.test"
WELZIJN = "welzijn@ocmw.test"


def rewrite(d, ms, rules=DEFAULT_RULES, **over):
    """Writes d's config again with chan_email keys over (as email_daemon wrote them)."""
    d.write_config(d.config(plugin_conf={"chan_email": email_conf(ms, **over)},
                            extra=example_units() + (rules_section(rules) if rules else "")))


def sanitizer_report(log):
    return re.search(r"(AddressSanitizer|LeakSanitizer|runtime error:)", log)


def test_reload_while_mail_flows_loses_nothing(loketd, mailserver):
    """Mails go through Postfix to both mailboxes while loketd is reloaded six times, each
    time with other folders, language and sender name: every mail becomes one contact, is
    moved out of the INBOX (to the folder of the settings its round ran with), the
    acknowledgements go out, and loketd stops cleanly (no sanitizer report)."""
    # One citizen writes every mail: the daily cap of acknowledgements must not hide any.
    d, client = email_daemon(loketd, mailserver, ack_per_day="1000")
    variants = [dict(processed_folder="Verwerkt", language="en", from_name="Gemeente B",
                     quarantine_folder="Quarantaine", poll="1s", ack_per_day="1000"),
                dict(processed_folder="Processed", language="nl", from_name="Gemeente A",
                     quarantine_folder="Quarantine", poll="2s", ack_per_day="1001")]
    total = 24
    subjects = ["Herladen %02d %s" % (i, uuid.uuid4().hex[:6]) for i in range(total)]
    errors = []

    def send_all():
        try:
            for i, s in enumerate(subjects):
                mailserver.send(CITIZEN, [INFO if i % 2 == 0 else WELZIJN],
                                citizen_mail(s, "Vraag %d\n" % i))
                time.sleep(0.05)
        except Exception as e:  # reported by the main thread
            errors.append(e)

    sender = threading.Thread(target=send_all)
    sender.start()
    for i in range(6):
        rewrite(d, mailserver, **variants[i % 2])
        reloads = len(re.findall(r"email settings reloaded", d.log()))
        d.send_signal(signal.SIGHUP)
        assert wait_for(lambda: len(re.findall(r"email settings reloaded", d.log())) > reloads,
                        10 * SLOW), d.log()[-3000:]
        assert d.running(), d.log()[-3000:]
        time.sleep(0.3)
    sender.join(60 * SLOW)
    assert not errors, errors

    got = wait_contacts(client, total, timeout=60)
    assert sorted(c["subject"] for c in got) == sorted(subjects)
    for user in (INFO, WELZIJN):
        assert wait_for(lambda: mailserver.messages(user, "INBOX") == [], 20 * SLOW), \
            "%s: mail left unacknowledged\n%s" % (user, d.log()[-3000:])
        moved = (len(mailserver.messages(user, "Processed"))
                 + len(mailserver.messages(user, "Verwerkt")))
        assert moved == total // 2, (user, moved)
    # Every acknowledgement went out, each under the settings of its own moment.
    assert wait_for(lambda: len(mailserver.messages(CITIZEN)) >= total, 60 * SLOW), \
        (len(mailserver.messages(CITIZEN)), d.log()[-3000:])
    assert not re.search(r'loket_outbox_total\{channel="email",result="failed"\}',
                         client.metrics())
    assert "reload failed" not in d.log()
    assert d.stop() == 0, d.log()[-3000:]
    assert not sanitizer_report(d.log()), d.log()[-5000:]


def test_a_mailbox_removed_on_reload_is_read_no_more(loketd, mailserver):
    """A mailbox line that leaves the config stops that mailbox at the reload (new and
    changed lines wait for a restart): its mail stays on the server, its lease goes back
    (so that another node sharing the register reads it at once), the other mailbox goes on."""
    d, client = email_daemon(loketd, mailserver, rules=None)
    d.wait_log(r" mailbox open mailbox=welzijn ", timeout=10 * SLOW)
    rewrite(d, mailserver, rules=None, mailbox2=None)
    d.send_signal(signal.SIGHUP)
    d.wait_log(r" mailbox removed mailbox=welzijn: its line left the config")
    d.wait_log(r" store lease released name=chan_email:mailbox:welzijn node=\S+:%d$" % d.proc.pid)
    d.wait_log(r" mailbox released mailbox=welzijn$")
    mailserver.send(CITIZEN, [WELZIJN], citizen_mail("Voor welzijn", "Vraag.\n"))
    mailserver.send(CITIZEN, [INFO], citizen_mail("Voor info", "Vraag.\n"))
    (contact,) = wait_contacts(client, 1)
    assert contact["subject"] == "Voor info"
    mailserver.wait_messages(WELZIJN, "INBOX", 1, timeout=10 * SLOW)
    time.sleep(3 * SLOW)  # three polls of the mailbox were it still read
    assert len(mailserver.messages(WELZIJN)) == 1
    assert [c["subject"] for c in email_contacts(client)] == ["Voor info"]
    assert "mail registered mailbox=welzijn" not in d.log()
    assert d.running()


def test_a_mailbox_name_that_could_not_name_its_lease_stops_the_start(loketd, mailserver):
    """A mailbox's NAME goes into its lease, its metrics and the log: letters, digits, '.',
    '_' and '-' only, at most 31 of them, checked by `loketd -t` and at start (file:line)."""
    line1 = email_conf(mailserver)["mailbox1"]
    for bad in ('in"fo', "info/x", "i\\nfo", "x" * 32):
        d, _ = email_daemon(loketd, mailserver, rules=None, start=False,
                            mailbox1=line1.replace("info ", bad + " ", 1))
        r = d.check()
        line = line_of(d.config_text, "mailbox1 = ")
        want = "loket.conf:%d: mailbox1: expected NAME URL ... with a NAME of letters" % line
        assert r.returncode != 0 and want in r.stderr, (bad, r.stderr)
        d.start_fails()
        assert want in d.log(), d.log()
    d, _ = email_daemon(loketd, mailserver, rules=None, start=False,
                        mailbox1=line1.replace("info ", "info.gemeente_2-b ", 1))
    assert d.check().returncode == 0


def test_imap_flag_must_be_an_atom(loketd, mailserver):
    """A keyword that is no IMAP atom (a space, a bracket, a quote, a backslash) is refused
    by `loketd -t`, at start and at a reload, naming file:line; a good one is set on the
    mail, and a refused reload keeps the running keyword."""
    for bad in ("$Lo ket", "$Loket)", '$Lo"ket', "\\Seen", "$Lo]ket", "$Lo*", "$Lo%"):
        d, _ = email_daemon(loketd, mailserver, rules=None, start=False, acknowledge="flag",
                            flag=bad)
        r = d.check()
        line = line_of(d.config_text, "flag = ")
        assert r.returncode != 0, (bad, r.stdout)
        assert "loket.conf:%d: flag: expected an IMAP keyword" % line in r.stderr, \
            (bad, r.stderr)
        d.start_fails()
        assert "loket.conf:%d: flag: expected an IMAP keyword" % line in d.log(), d.log()

    d, client = email_daemon(loketd, mailserver, rules=None, acknowledge="flag",
                             flag="$Loket_ontvangen")
    mailserver.send(CITIZEN, [INFO], citizen_mail("Met vlag", "x\n"))
    wait_contacts(client, 1)
    assert wait_for(lambda: [m for m in mailserver.messages(INFO)
                             if "$Loket_ontvangen" in m[2]], 20 * SLOW), d.log()[-2000:]

    rewrite(d, mailserver, rules=None, acknowledge="flag", flag="$Loket ontvangen")
    d.send_signal(signal.SIGHUP)
    line = line_of(d.config_text, "flag = ")
    assert d.wait_log(r"reload failed, keeping the running config: .*loket\.conf:%d: flag: "
                      r"expected an IMAP keyword" % line, 10 * SLOW), d.log()[-2000:]
    mailserver.send(CITIZEN, [INFO], citizen_mail("Nog een vlag", "y\n"))
    wait_contacts(client, 2)
    assert wait_for(lambda: len([m for m in mailserver.messages(INFO)
                                 if "$Loket_ontvangen" in m[2]]) == 2, 20 * SLOW), \
        d.log()[-2000:]
    assert d.stop() == 0
    assert not sanitizer_report(d.log()), d.log()[-5000:]


class FakeServer:
    """A line-based mail server on loopback that offers no STARTTLS and writes down every
    command it gets; greet, then answer(line) -> reply lines (or None to hang up)."""

    def __init__(self, greeting, answer):
        self.greeting, self.answer = greeting, answer
        self.lines = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn):
        conn.settimeout(10)
        buf = b""
        try:
            conn.sendall(self.greeting)
            while not self.stopped:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.rstrip(b"\r").decode("utf-8", "replace")
                    self.lines.append(line)
                    reply = self.answer(line)
                    if reply is None:
                        return
                    conn.sendall(reply)
        except OSError:
            return
        finally:
            conn.close()

    def said(self, pattern):
        return [l for l in self.lines if re.search(pattern, l, re.I)]

    def close(self):
        self.stopped = True
        self.sock.close()


def imap_answer(line):
    """An IMAP server without STARTTLS that refuses every login."""
    tag, _, rest = line.partition(" ")
    verb = rest.split(" ", 1)[0].upper()
    if verb == "CAPABILITY":
        return ("* CAPABILITY IMAP4rev1\r\n%s OK done\r\n" % tag).encode()
    if verb in ("LOGIN", "AUTHENTICATE"):
        return ("%s NO [AUTHENTICATIONFAILED] no\r\n" % tag).encode()
    if verb == "LOGOUT":
        return ("* BYE\r\n%s OK bye\r\n" % tag).encode()
    return ("%s BAD unexpected\r\n" % tag).encode()


def smtp_answer(line):
    """An SMTP server that offers AUTH but no STARTTLS, and takes any mail."""
    verb = line.split(" ", 1)[0].upper()
    if verb in ("EHLO", "HELO"):
        return b"250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
    if verb == "AUTH":
        return b"535 5.7.8 no\r\n"
    if verb == "QUIT":
        return None
    return b"250 ok\r\n"


def mailbox_line(port, host="127.0.0.1"):
    return ("info imap://%s:%d/INBOX user=info@gemeente.test password=geheim-wachtwoord "
            "organisation=gemeente" % (host, port))


def test_auth_never_sent_without_tls(loketd, mailserver, tmp_path):
    """A server (or a machine in the middle) that offers no STARTTLS gets no IMAP LOGIN and
    no SMTP AUTH, with starttls = try as with the default: the mailbox reports it cannot be
    read and the reply waits, saying why. starttls = no with a password to send stops the
    start; only insecure_auth = yes lets the password go in clear."""
    imap = FakeServer(b"* OK fake\r\n", imap_answer)
    smtp = FakeServer(b"220 fake ESMTP\r\n", smtp_answer)
    secret = tmp_path / "smtp.pw"
    secret.write_text("geheim-wachtwoord\n")
    try:
        for tls in ("try", "auto"):
            d, client = email_daemon(
                loketd, mailserver, rules=None, starttls=tls, insecure_auth="no",
                mailbox1=mailbox_line(imap.port), mailbox2="", smtp_port=str(smtp.port),
                smtp_user="info@gemeente.test", smtp_password_file=str(secret),
                retry_min="1h", retry_max="1h")
            assert d.wait_log(r"mailbox unreachable mailbox=info", 15 * SLOW), d.log()
            c = client.create(channel="email", subject="Vraag", party={"email": CITIZEN})
            client.call("POST", "/api/v1/contacts/%d/messages" % c["id"], {"body": "x"},
                        token=client.agent)
            assert wait_for(lambda: re.search(
                r'loket_outbox_total\{channel="email",result="retry"\}', client.metrics()),
                20 * SLOW), d.log()[-2000:]
            assert imap.said(r"^\S+ CAPABILITY"), imap.lines
            assert smtp.said(r"^EHLO"), smtp.lines
            assert not imap.said(r"^\S+ (LOGIN|AUTHENTICATE)"), (tls, imap.lines)
            assert not smtp.said(r"^(AUTH|MAIL)"), (tls, smtp.lines)
            assert "geheim-wachtwoord" not in d.log()
            assert d.stop() == 0
            assert not sanitizer_report(d.log()), d.log()[-5000:]

        d, _ = email_daemon(loketd, mailserver, rules=None, start=False, starttls="no",
                            insecure_auth="no", mailbox1=mailbox_line(imap.port), mailbox2="")
        d.start_fails()
        assert "starttls = no would send an IMAP password without TLS" in d.log(), d.log()
        d, _ = email_daemon(loketd, mailserver, rules=None, start=False, starttls="no",
                            insecure_auth="no", mailbox1="", mailbox2="",
                            smtp_port=str(smtp.port), smtp_user="info@gemeente.test",
                            smtp_password_file=str(secret))
        d.start_fails()
        assert "starttls = no would send the SMTP password without TLS" in d.log(), d.log()

        # Said in so many words, the password goes in clear (a test server on loopback).
        d, client = email_daemon(
            loketd, mailserver, rules=None, starttls="try", insecure_auth="yes",
            mailbox1=mailbox_line(imap.port), mailbox2="", smtp_port=str(smtp.port),
            smtp_user="info@gemeente.test", smtp_password_file=str(secret))
        assert wait_for(lambda: imap.said(r"^\S+ (LOGIN|AUTHENTICATE)"), 15 * SLOW), \
            (imap.lines, d.log()[-2000:])
        assert d.stop() == 0
    finally:
        imap.close()
        smtp.close()


def test_starttls_defaults_to_require_off_loopback(loketd, mailserver):
    """Without a starttls line, a server on loopback is read over plain IMAP when it offers
    no TLS (and the admin allowed the password in clear), while the same server reached by
    an address that is not loopback (::ffff:127.0.0.1) must offer STARTTLS: nothing is
    sent to it, not even with insecure_auth = yes."""
    imap = FakeServer(b"* OK fake\r\n", imap_answer)
    try:
        over = dict(rules=None, starttls=None, insecure_auth="yes", mailbox2="")
        d, _ = email_daemon(loketd, mailserver,
                            mailbox1=mailbox_line(imap.port, "[::ffff:127.0.0.1]"), **over)
        assert d.wait_log(r"mailbox unreachable mailbox=info", 15 * SLOW), d.log()
        assert imap.said(r"^\S+ CAPABILITY"), (imap.lines, d.log()[-2000:])
        assert not imap.said(r"^\S+ (LOGIN|AUTHENTICATE)"), imap.lines
        assert d.stop() == 0

        d, _ = email_daemon(loketd, mailserver, mailbox1=mailbox_line(imap.port), **over)
        assert wait_for(lambda: imap.said(r"^\S+ (LOGIN|AUTHENTICATE)"), 15 * SLOW), \
            (imap.lines, d.log()[-2000:])
        assert d.stop() == 0
    finally:
        imap.close()
