"""Shared helpers of the email channel tests; no tests here.

A loketd with chan_email reading the municipal mailbox info@gemeente.test and the
welfare centre's welzijn@ocmw.test on the test Dovecot, sending through the test
Postfix, with the default rules (acknowledgements) and the example organisations.
"""

import email
import email.policy
import json
import os
import time
import uuid

from conftest import SLOW, SRCDIR, wait_for
from test_rules_support import DEFAULT_RULES, Client, example_units, rules_section

TEMPLATES = os.path.join(SRCDIR, "etc", "templates")
CORPUS = os.path.join(SRCDIR, "tests", "email", "corpus")
CITIZEN = "burger1@burger.test"


def email_conf(ms, **over):
    """The [plugin.chan_email] keys for the mail fixture ms; keyword arguments override."""
    keys = {
        "mailbox1": ("info imap://127.0.0.1:%d/INBOX user=info@gemeente.test password=%s "
                     "organisation=gemeente address=info@gemeente.test"
                     % (ms.imap_port, ms.password)),
        "mailbox2": ("welzijn imap://127.0.0.1:%d/INBOX user=welzijn@ocmw.test password=%s "
                     "organisation=ocmw department=sociale_dienst address=welzijn@ocmw.test "
                     'from_name="OCMW Voorbeeld"'
                     % (ms.imap_port, ms.password)),
        "smtp_host": "127.0.0.1",
        "smtp_port": str(ms.smtp_port),
        "starttls": "no",
        # The test Dovecot on loopback, read without TLS: the password goes in clear.
        "insecure_auth": "yes",
        "poll": "1s",
        "templates": TEMPLATES,
        "from_name": "Gemeente Voorbeeld",
        "retry_min": "1s",
        "retry_max": "2s",
    }
    keys.update(over)
    # None leaves a key out: its default applies.
    return {k: v for k, v in keys.items() if v is not None}


def email_daemon(loketd, ms, rules=DEFAULT_RULES, start=True, **over):
    """A started loketd with chan_email on ms; (daemon, Client)."""
    for user in ms.users:
        ms.clear(user)
    d = loketd(plugins=["chan_email"], plugin_conf={"chan_email": email_conf(ms, **over)},
               extra=example_units() + (rules_section(rules) if rules else ""), start=start)
    return d, Client(d)


def citizen_mail(subject, body, sender=CITIZEN, to="info@gemeente.test", msgid=None,
                 headers=None):
    """A plain UTF-8 mail as bytes, with a fresh Message-ID unless msgid is given."""
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Jan Peeters <%s>" % sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<%s>" % (msgid or "%s@burger.test" % uuid.uuid4().hex)
    msg["Date"] = email.utils.formatdate(localtime=True)
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg.as_bytes()


def email_contacts(client, **query):
    """The email channel's contacts, newest first (all pages)."""
    items, cursor = [], None
    while True:
        q = "channel=email&limit=500" + "".join("&%s=%s" % kv for kv in query.items())
        if cursor:
            q += "&cursor=" + cursor
        status, doc, _, raw = client.call("GET", "/api/v1/contacts?" + q, token=client.admin)
        assert status == 200, raw[:300]
        items += doc["items"]
        cursor = doc.get("next_cursor")
        if not cursor:
            return items


def wait_contacts(client, count, timeout=20):
    got = wait_for(lambda: len(email_contacts(client)) >= count and email_contacts(client),
                   timeout * SLOW, interval=0.2)
    assert got, "expected %d email contacts, have %d\n%s" % (
        count, len(email_contacts(client)), client.d.log()[-3000:])
    return got


def messages(client, cid):
    status, doc, _, raw = client.call("GET", "/api/v1/contacts/%s/messages" % cid,
                                      token=client.admin)
    assert status == 200, raw[:300]
    return doc["items"]


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def wait_mail(ms, user, count=1, folder="INBOX", timeout=30, settle=0.5):
    """The parsed mails in user's folder once there are count of them (and, after a
    short settle, not more: a test that expects one mail must see a second one)."""
    ms.wait_messages(user, folder, count, timeout=timeout * SLOW)
    time.sleep(settle * SLOW)
    return [parse(raw) for _, raw, _ in ms.messages(user, folder)]


def dump(obj):
    return json.dumps(obj, indent=1, ensure_ascii=False)[:3000]


__all__ = ["CITIZEN", "CORPUS", "TEMPLATES", "citizen_mail", "dump", "email_conf",
           "email_contacts", "email_daemon", "messages", "parse", "time", "wait_contacts",
           "wait_mail"]
