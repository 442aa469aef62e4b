"""The mail corpus of tests/email/corpus (and the generated hostile cases of its
expected.json) through the whole path: APPENDed to a real Dovecot, read by chan_email over
IMAP, registered or quarantined. expected.json was written for the C parser
(tests/unit/test_email_mime.c); here every outcome must hold end to end:

- "contact": registered, with its subject, sender, Message-ID, body and attachments;
- "auto": registered as a contact tagged "automatic" with meta.automatic the reason;
- "quarantine": no contact; the mail sits in the Quarantine folder byte for byte as the
  server served it, GET /api/v1/email/quarantine names the error, and
  loket_email_quarantined_total counts it.

One bad mail never stops a mailbox (the mails after each quarantined one are registered),
and nothing of the mails (addresses, subjects, names) reaches loketd's log.

Over IMAP two things differ from the C test: 25-empty.eml cannot be APPENDed (Dovecot:
"Can't save a zero byte message"), so it is left out; and the server hands mails out with
CRLF line ends, so a message size in an error ("message is N bytes") is the CRLF size.
"""

import base64
import json
import os
import re

from conftest import SLOW, wait_for
from email_support import CORPUS, email_contacts, email_daemon, messages
from mail_fixtures import mailserver  # noqa: F401

INFO = "info@gemeente.test"
MiB = 1024 * 1024

# The limits of tests/unit/test_email_mime.c, so that expected.json's errors apply as is.
LIMITS = {
    "max_message": str(10 * MiB),
    "max_attachment": str(1 * MiB),
    "max_attachments_total": str(2 * MiB),
    "max_depth": "20",
    "max_addresses": "1000",
}

# Cannot be APPENDed at all: IMAP has no empty message.
NOT_APPENDABLE = {"25-empty.eml"}

# What the server changes on the way, so that expected.json cannot hold as written:
# - 21-bounce.eml: the message/delivery-status part is not encoded, so its bytes are the
#   part as served, with CRLF: its 5 lines make it 109 + 5 bytes.
# - 37-nul-byte.eml: Dovecot stores a NUL as 0x80 (checked below), which is no UTF-8, so the
#   body holds U+FFFD where the C parser, which sees the NUL, drops it.
OVER_IMAP = {
    "21-bounce.eml": {"attachments": [dict(content_type="message/delivery-status",
                                           filename="attachment", size=109 + 5),
                                      dict(content_type="message/rfc822",
                                           filename="message.eml")]},
    "37-nul-byte.eml": {"body": "Er ligt een stoeptegel los\ufffd voor huisnummer 14.\n"},
}


# the generated cases, as tests/unit/test_email_mime.c writes them ------------------------

def _headers(name, subject):
    # The C test gives every generated mail <gen@example.be>; in one mailbox that would make
    # the second a duplicate of the first, so each gets its own Message-ID here.
    return ("From: Test Burger <burger@example.be>\nTo: info@zemst.be\nSubject: %s\n"
            "Date: Mon, 6 Apr 2026 10:00:00 +0200\nMessage-ID: <%s@example.be>\n"
            "MIME-Version: 1.0\n" % (subject, name[:-4])).encode()


def _base64(nbytes, fill):
    raw = bytes((fill + i * 7) & 0xFF for i in range(nbytes))
    b64 = base64.b64encode(raw)
    return b"".join(b64[i:i + 76] + b"\n" for i in range(0, len(b64), 76))


def _nested(name, depth):
    s = [_headers(name, "Diep")]
    for i in range(depth):
        s.append(b'Content-Type: multipart/mixed; boundary="grens%d"\n\n--grens%d\n' % (i, i))
    s.append(b"Content-Type: text/plain; charset=utf-8\n\ndiep verstopt\n")
    for i in reversed(range(depth)):
        s.append(b"--grens%d--\n" % i)
    return b"".join(s)


def _attachments(name, n, nbytes):
    s = [_headers(name, "Grote bijlage"),
         b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
         b"Content-Type: text/plain\n\nZie bijlage.\n"]
    for i in range(n):
        s.append(b"--b\nContent-Type: application/pdf\n"
                 b'Content-Disposition: attachment; filename="plan%d.pdf"\n'
                 b"Content-Transfer-Encoding: base64\n\n" % i)
        s.append(_base64(nbytes, i))
    s.append(b"--b--\n")
    return b"".join(s)


def generated():
    g = {}
    g["gen-100k-addresses.eml"] = (
        b"From: spam@example.be\nSubject: Veel\nTo: " +
        b",\n ".join(b"burger%d@example.be" % i for i in range(100000)) + b"\n\nHallo\n")
    to = b", ".join(b"burger%d@example.be" % i for i in range(1000))
    cc = b", ".join(b"burger%d@example.be" % i for i in range(1000, 1500))
    g["gen-1500-addresses.eml"] = (b"From: spam@example.be\nSubject: Veel\nTo: " + to +
                                   b"\nCc: " + cc + b"\n\nHallo\n")
    g["gen-900-named-addresses.eml"] = (
        _headers("gen-900-named-addresses.eml", "Uitnodiging infoavond") + b"Cc: " +
        b",\n ".join(b"'burger%d@example.be' <burger%d@example.be>" % (i, i)
                     for i in range(900)) + b"\n\nGraag tot dan.\n")
    g["gen-deep-1000.eml"] = _nested("gen-deep-1000.eml", 1000)
    g["gen-deep-19.eml"] = _nested("gen-deep-19.eml", 19)
    g["gen-big-attachment.eml"] = _attachments("gen-big-attachment.eml", 1, 1536 * 1024)
    g["gen-total.eml"] = _attachments("gen-total.eml", 3, 900 * 1024)
    line = b"Dit bericht is veel te groot om te verwerken door het loket.\n"
    big = _headers("gen-too-large.eml", "Te groot") + b"\n"
    big += line * ((11 * MiB - len(big)) // len(line) + 1)
    g["gen-too-large.eml"] = big[:11 * MiB]
    return g


# helpers ----------------------------------------------------------------------------------

def append_all(ms, named):
    """APPENDs [(name, raw)] in order on one connection; {name: uid}."""
    uids = {}
    c = ms.imap(INFO, timeout=60)
    try:
        for name, raw in named:
            typ, data = c.append("INBOX", None, None, raw)
            assert typ == "OK", "APPEND %s: %r" % (name, data)
            uids[name] = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
    finally:
        c.logout()
    return uids


def error_matches(name, want, got):
    if name == "gen-too-large.eml":
        # The size the server serves is the CRLF size, not the file's.
        return re.search(r"message is \d+ bytes, over the limit of %d" % (10 * MiB), got)
    return want in got


def personal_data(named, expected):
    """Strings from the mails that must never appear in the log: every address in any of
    them, and the subjects and names expected.json lists."""
    found = set()
    rx = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
    for name, raw in named:
        head = raw[:200000]  # the 100k-address header holds nothing new past that
        for m in rx.finditer(head):
            found.add(m.group(0).decode().lower())
    for exp in expected.values():
        for key in ("subject", "from_name", "from"):
            v = exp.get(key)
            if v and len(v) >= 6:
                found.add(v)
    # Addresses of the test system itself are the mailbox's own, not a citizen's.
    return sorted(s for s in found if not s.endswith("@gemeente.test"))


# the test ---------------------------------------------------------------------------------

def test_corpus_over_imap(loketd, mailserver):
    with open(os.path.join(CORPUS, "expected.json")) as f:
        expected = json.load(f)
    on_disk = sorted(n for n in os.listdir(CORPUS) if n.endswith(".eml"))
    assert set(on_disk) == {n for n, e in expected.items() if not e.get("generated")}
    named = []
    for name in on_disk:
        if name in NOT_APPENDABLE:
            continue
        with open(os.path.join(CORPUS, name), "rb") as f:
            named.append((name, f.read()))
    gen = generated()
    assert set(gen) == {n for n, e in expected.items() if e.get("generated")}
    named += sorted(gen.items())
    # A plain mail last: the mailbox goes on after the biggest and deepest.
    last = ("zz-last.eml", (
        b"From: Laatste Burger <laatste@burger.test>\nTo: info@gemeente.test\n"
        b"Subject: Laatste vraag na de rommel\nMessage-ID: <zz-last@burger.test>\n\n"
        b"Werkt het loket nog?\n"))
    named.append(last)
    expected = dict(expected, **{last[0]: {"outcome": "contact",
                                           "subject": "Laatste vraag na de rommel",
                                           "body_contains": ["Werkt het loket nog?"]}})

    d, client = email_daemon(loketd, mailserver, rules=None, start=False, **LIMITS)
    uids = append_all(mailserver, named)
    by_uid = {uid: name for name, uid in uids.items()}
    served = {uid: raw for uid, raw, _ in mailserver.messages(INFO)}
    assert set(served) == set(by_uid)
    assert b"los\x80 voor" in served[uids["37-nul-byte.eml"]], "Dovecot kept the NUL now?"
    for name, over in OVER_IMAP.items():
        expected[name] = dict(expected[name], **over)
    d.start()

    ok = wait_for(lambda: not mailserver.messages(INFO), 90 * SLOW, interval=0.5)
    left = [by_uid.get(u, u) for u, _, _ in mailserver.messages(INFO)]
    assert ok, "left in the INBOX: %s\n%s" % (left, d.log()[-5000:])
    problems = []

    # What the register holds: every inbound message, by the UID it had in the INBOX.
    contacts = {c["id"]: c for c in email_contacts(client)}
    inbound = {}
    for cid in contacts:
        for i, m in enumerate(x for x in messages(client, cid) if x["direction"] == "in"):
            uid = (m.get("meta") or {}).get("uid")
            assert uid in by_uid, "inbound message with no known uid: %r" % m
            inbound.setdefault(by_uid[uid], []).append((contacts[cid], m, i == 0))
    twice = {n: len(v) for n, v in inbound.items() if len(v) > 1}
    assert not twice, "registered more than once: %s" % twice

    quarantine_folder = {uid: raw for uid, raw, _ in mailserver.messages(INFO, "Quarantine")}
    status, doc, _, raw = client.call("GET", "/api/v1/email/quarantine", token=client.admin)
    assert status == 200, raw[:300]
    listed = {}
    for e in doc["items"]:
        listed.setdefault(e["uid"], []).append(e)
    quarantine_by_bytes = {raw: uid for uid, raw in quarantine_folder.items()}

    n_quarantine = 0
    for name, _ in named:
        exp, uid = expected[name], uids[name]
        outcome = exp["outcome"]
        if outcome == "quarantine":
            n_quarantine += 1
            if name in inbound:
                problems.append("%s: registered, expected quarantine" % name)
            if served[uid] not in quarantine_by_bytes:
                problems.append("%s: not in the Quarantine folder byte for byte" % name)
            entries = listed.get(uid, [])
            if len(entries) != 1:
                problems.append("%s: %d entries in GET /api/v1/email/quarantine"
                                % (name, len(entries)))
                continue
            e = entries[0]
            if e["mailbox"] != "info" or e["folder"] != "Quarantine":
                problems.append("%s: quarantine entry %r" % (name, e))
            want = exp.get("error_contains")
            if want and not error_matches(name, want, e["error"]):
                problems.append("%s: error [%s], expected [%s]" % (name, e["error"], want))
            if "@" in e["error"]:
                problems.append("%s: the error holds an address: %s" % (name, e["error"]))
            continue
        if name not in inbound:
            problems.append("%s: not registered, expected %s (quarantine entry: %r)"
                            % (name, outcome, listed.get(uid)))
            continue
        if served[uid] in quarantine_by_bytes:
            problems.append("%s: registered and also in the Quarantine folder" % name)
        ((contact, m, first),) = inbound[name]
        problems += check_message(name, exp, contact, m, first)

    # One bad mail never stops a mailbox: something after each quarantined mail went in.
    order = [n for n, _ in named]
    for i, name in enumerate(order):
        if expected[name]["outcome"] == "quarantine":
            later = [n for n in order[i + 1:] if n in inbound]
            if not later:
                problems.append("nothing registered after %s" % name)

    if len(quarantine_folder) != n_quarantine:
        problems.append("the Quarantine folder holds %d mails, expected %d" % (
            len(quarantine_folder), n_quarantine))
    m = re.search(r'^loket_email_quarantined_total\{mailbox="info"\} (\S+)$',
                  client.metrics(), re.M)
    if not m or float(m.group(1)) != n_quarantine:
        problems.append("loket_email_quarantined_total is %s, expected %d"
                        % (m.group(1) if m else "absent", n_quarantine))
    processed = mailserver.messages(INFO, "Processed")
    if len(processed) != len(inbound):
        problems.append("Processed holds %d mails for %d registered"
                        % (len(processed), len(inbound)))

    # Personal data never reaches the log: no address, subject or name of any mail.
    log = d.log()
    leaked = [s for s in personal_data(named, expected) if s.lower() in log.lower()]
    if leaked:
        problems.append("the log holds personal data: %s" % leaked[:10])

    assert not problems, "\n".join(problems) + "\n--- log tail:\n" + log[-3000:]
    print("corpus over IMAP: %d mails, %d registered (%d threaded onto another contact: %s), "
          "%d quarantined; %d strings of personal data absent from the log" % (
              len(named), len(inbound), sum(1 for v in inbound.values() if not v[0][2]),
              [n for n, v in inbound.items() if not v[0][2]], n_quarantine,
              len(personal_data(named, expected))))


def check_message(name, exp, contact, m, first):
    """Differences between a registered message (and its contact) and expected.json."""
    out = []

    def differ(what, want, got):
        if want != got:
            out.append("%s: %s is %r, expected %r" % (name, what, got, want))

    if "subject" in exp:
        differ("subject", exp["subject"], m["subject"] or "")
        if first:
            differ("contact subject", exp["subject"], contact.get("subject") or "")
    if "from" in exp:
        want = exp["from"].lower() if exp["from"] else None
        differ("sender", want, (m.get("sender") or "").lower() or None)
    if "message_id" in exp:
        differ("message_id", exp["message_id"], m.get("message_id"))
    body = m.get("body") or ""
    if "body" in exp:
        differ("body", exp["body"], body)
    for s in exp.get("body_contains", []):
        if s not in body:
            out.append("%s: body lacks %r: %r" % (name, s, body[:400]))
    for s in exp.get("body_not_contains", []):
        if s in body:
            out.append("%s: body holds %r: %r" % (name, s, body[:400]))
    if "body_from_html" in exp:
        differ("meta.from_html", exp["body_from_html"], bool((m.get("meta") or {}).get(
            "from_html")))
    if "attachments" in exp:
        got = m.get("attachments") or []
        if len(got) != len(exp["attachments"]):
            out.append("%s: %d attachments %r, expected %d" % (
                name, len(got), got, len(exp["attachments"])))
        else:
            for want, a in zip(exp["attachments"], got):
                for k, gk in (("filename", "name"), ("content_type", "content_type"),
                              ("size", "size")):
                    if k in want:
                        differ("attachment " + k, want[k], a.get(gk))
    if exp["outcome"] == "auto":
        differ("automatic", exp["auto_reason"], m.get("automatic"))
        if first:
            if "automatic" not in (contact.get("tags") or []):
                out.append("%s: contact not tagged automatic: %r" % (name, contact.get("tags")))
            differ("contact meta.automatic", exp["auto_reason"],
                   (contact.get("meta") or {}).get("automatic"))
        else:
            out.append("%s: automatic mail threaded onto contact %s" % (name, contact["id"]))
    else:
        differ("automatic", None, m.get("automatic"))
        if first and "automatic" in (contact.get("tags") or []):
            out.append("%s: a citizen's mail tagged automatic" % name)
    if not first and name != "16-reply-token.eml":
        # Only 16 refers to another mail of the corpus (01's Message-ID in References).
        out.append("%s: threaded onto contact %s (%r)" % (name, contact["id"],
                                                           contact.get("subject")))
    return out
