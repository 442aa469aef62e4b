"""Several nodes, one register: two loketd nodes on one PostgreSQL register read each
mailbox from one of them only (the one holding the mailbox's lease), and the other takes the
mailbox over when that node dies; leases of plugins are their own (the plugin's name before
the lease's) and never held by two nodes at once.

Two nodes are two daemons on one data_dir (so on one database, conftest.py), each with a
control socket of its own, reading the real Dovecot of mail_fixtures.py."""
import re
import signal
import time
import uuid

import pytest

from conftest import SLOW, wait_for
from email_support import citizen_mail, email_conf, email_contacts, wait_contacts
from mail_fixtures import mailserver  # noqa: F401
from test_rules_support import Client, example_units

pytestmark = pytest.mark.pgsql_only("nodes sharing one PostgreSQL register")

INFO = "info@gemeente.test"
# Short, so that a dead node's mailbox moves within the test's patience; [storage] lease.
LEASE_S = 2


def nodes(loketd, ms, lease_s=LEASE_S, **over):
    """Two nodes on one register reading the info mailbox, not started: (a, b). hello comes
    along for its lease route; b has a control socket of its own beside a's in data_dir."""
    for user in ms.users:
        ms.clear(user)
    conf = {"chan_email": email_conf(ms, mailbox2=None, **over)}
    extra = example_units() + "[storage]\nlease = %ds\n" % lease_s
    a = loketd(plugins=["chan_email", "hello"], plugin_conf=conf, extra=extra, start=False)
    sock = "/tmp/loket-node-%s.sock" % uuid.uuid4().hex[:12]
    b = loketd(plugins=["chan_email", "hello"], plugin_conf=conf, extra=extra, start=False,
               loketd_conf={"data_dir": a.data_dir, "control_socket": sock})
    return a, b


def holder(d):
    """How a node's log names it as a lease holder: its node name and pid."""
    m = d.wait_log(r" store lease taken name=chan_email:mailbox:info node=(\S+:%d)$"
                   % d.proc.pid, timeout=10 * SLOW)
    return m.group(1)


def registered(d):
    """The UIDs a node's log says it registered from the info mailbox."""
    return re.findall(r"mail registered mailbox=info uid=(\d+) ", d.log())


def lease(d, token, name, ttl=None, release=False):
    q = "&".join(p for p in ("ttl=%d" % ttl if ttl is not None else "",
                             "release=1" if release else "") if p)
    status, _, body = d.request("POST", "/hello/lease/%s%s" % (name, "?" + q if q else ""),
                                headers={"Authorization": "Bearer " + token})
    assert status == 200, body
    return int(re.search(rb'"held_ms":(\d+)', body).group(1))


def test_two_nodes_read_a_mailbox_from_one_node_only(loketd, mailserver):
    a, b = nodes(loketd, mailserver)
    a.start()
    client = Client(a)
    client.admin  # a node reads the tokens when it starts: made before b starts
    a_node = holder(a)
    b.start()
    b.wait_log(r" mailbox waits mailbox=info: another node reads it", timeout=10 * SLOW)

    subjects = ["Twee knopen %02d" % i for i in range(12)]
    for i, s in enumerate(subjects):
        if i % 2:
            mailserver.send("burger1@burger.test", [INFO], citizen_mail(s, "Vraag %d.\n" % i))
        else:
            mailserver.append(INFO, "INBOX", citizen_mail(s, "Vraag %d.\n" % i))
    contacts = wait_contacts(client, len(subjects), timeout=60)
    assert wait_for(lambda: not mailserver.messages(INFO), 20 * SLOW), \
        "the INBOX was not emptied\n" + a.log()[-2000:] + b.log()[-2000:]
    time.sleep(3 * LEASE_S)  # room for a second node that fetched too to show it
    contacts = email_contacts(client)
    assert sorted(c["subject"] for c in contacts) == sorted(subjects), \
        [c["subject"] for c in contacts]
    assert len(mailserver.messages(INFO, "Processed")) == len(subjects)
    # Only the holder fetched: every registration is in a's log, none in b's, and b never
    # even opened the mailbox.
    assert len(registered(a)) == len(subjects), a.log()[-3000:]
    assert registered(b) == [] and " mailbox open mailbox=info" not in b.log(), b.log()[-3000:]
    assert "lease taken name=chan_email:mailbox:info" not in b.log(), b.log()[-3000:]
    # Renewed all along, never lost: one taking in a's log.
    assert a.log().count("lease taken name=chan_email:mailbox:info ") == 1, a.log()[-3000:]
    assert a_node.endswith(":%d" % a.proc.pid)

    # A lease is kept under the plugin's name: hello's "mailbox:info" is not chan_email's.
    token = client.admin
    assert lease(b, token, "mailbox:info") > 0
    b.wait_log(r" store lease taken name=hello:mailbox:info node=\S+:%d$" % b.proc.pid)
    assert " mailbox waits mailbox=info" in b.log() and registered(b) == []


def test_two_nodes_never_hold_one_lease_and_the_log_names_who_took_it_over(loketd,
                                                                         mailserver):
    a, b = nodes(loketd, mailserver)
    a.start()
    token = Client(a).admin
    b.start()
    assert lease(a, token, "printer", ttl=60000) == 60000
    assert lease(b, token, "printer", ttl=60000) == 0
    assert lease(a, token, "printer", ttl=60000) == 60000  # a renewal
    # b cannot give up what a holds.
    assert lease(b, token, "printer", release=True) == 0
    assert lease(b, token, "printer") == 0
    assert lease(a, token, "printer", release=True) == 0
    assert lease(b, token, "printer", ttl=60000) == 60000
    assert lease(a, token, "printer") == 0
    # A lease that ran out goes to the next node that asks; its log names where it came from.
    assert lease(a, token, "kiosk", ttl=300) == 300
    assert lease(b, token, "kiosk", ttl=60000) == 0
    time.sleep(0.6)
    assert lease(b, token, "kiosk", ttl=60000) == 60000
    b_node = "%s:%d" % (re.search(r"node=([^\s:]+):%d" % b.proc.pid, b.log()).group(1),
                        b.proc.pid)
    m = b.wait_log(r" store lease taken over name=hello:kiosk node=(\S+) from=(\S+)$")
    assert m.group(1) == b_node and m.group(2).endswith(":%d" % a.proc.pid), m.group(0)
    # a hears it lost the lease the next time it asks.
    assert lease(a, token, "kiosk", ttl=60000) == 0
    m = a.wait_log(r" store lease lost name=hello:kiosk node=\S+:%d held_by=(\S+)$" % a.proc.pid)
    assert m.group(1) == b_node


def test_kill_9_of_the_reading_node_hands_its_mailbox_to_the_other(loketd, mailserver):
    a, b = nodes(loketd, mailserver)
    a.start()
    client = Client(a)
    client.admin
    a_node = holder(a)
    b.start()
    b.wait_log(r" mailbox waits mailbox=info", timeout=10 * SLOW)
    mailserver.append(INFO, "INBOX", citizen_mail("Voor de crash", "Eerste vraag.\n"))
    wait_contacts(client, 1)
    assert wait_for(lambda: not mailserver.messages(INFO), 10 * SLOW)

    a.proc.kill()
    a.proc.wait()
    killed = time.monotonic()
    mailserver.append(INFO, "INBOX", citizen_mail("Na de crash", "Tweede vraag.\n"))
    m = b.wait_log(r" store lease taken over name=chan_email:mailbox:info node=(\S+) "
                   r"from=(\S+)$", timeout=(LEASE_S + 5) * SLOW)
    took = time.monotonic() - killed
    # The dead node's lease runs out within LEASE_S of its last renewal; b asks every second.
    assert took <= (LEASE_S + 1 + 1.5) * SLOW, "b took the mailbox over %.1fs after the kill" % took
    assert m.group(2) == a_node and m.group(1).endswith(":%d" % b.proc.pid), m.group(0)
    b.wait_log(r" mailbox taken mailbox=info: this node reads it now")

    client_b = Client(b)
    client_b._tokens = dict(client._tokens)
    contacts = wait_contacts(client_b, 2, timeout=20)
    assert sorted(c["subject"] for c in contacts) == ["Na de crash", "Voor de crash"]
    assert wait_for(lambda: not mailserver.messages(INFO), 10 * SLOW)
    assert len(registered(b)) == 1, b.log()[-3000:]
    time.sleep(1)
    assert len(email_contacts(client_b)) == 2


def test_a_node_that_stops_or_drops_the_mailbox_hands_it_over_at_once(loketd, mailserver):
    """A lease given back is taken at the other node's next ask, long before it would run
    out (30 s here): when the mailbox's line leaves the holder's config (reload), and when
    the holder stops (SIGTERM)."""
    a, b = nodes(loketd, mailserver, lease_s=30)
    a.start()
    client = Client(a)
    client.admin
    holder(a)
    b.start()
    b.wait_log(r" mailbox waits mailbox=info", timeout=10 * SLOW)

    # Reload a without the info mailbox: it stops reading it and gives the lease back.
    config = a.config_text
    a.write_config(config.replace(re.search(r"^mailbox1 = .*$", config, re.M).group(0),
                                  "mailbox1 ="))
    dropped = time.monotonic()
    a.send_signal(signal.SIGHUP)
    a.wait_log(r" mailbox removed mailbox=info: its line left the config")
    a.wait_log(r" store lease released name=chan_email:mailbox:info node=\S+:%d$" % a.proc.pid)
    b.wait_log(r" store lease taken name=chan_email:mailbox:info node=\S+:%d$" % b.proc.pid,
               timeout=5 * SLOW)
    assert time.monotonic() - dropped < 5 * SLOW
    mailserver.append(INFO, "INBOX", citizen_mail("Na het herladen", "Vraag.\n"))
    client_b = Client(b)
    client_b._tokens = dict(client._tokens)
    wait_contacts(client_b, 1)
    assert wait_for(lambda: len(registered(b)) == 1, 10 * SLOW), b.log()[-3000:]
    assert registered(a) == []

    # a comes back with the line (a restart) and waits; b stops cleanly and a reads at once.
    assert a.stop() == 0
    a.close()
    a.proc = None
    a.write_config(config)
    after = len(a.log())
    a.start()
    a.wait_log(r" mailbox waits mailbox=info", timeout=10 * SLOW, after=after)
    assert b.stop() == 0
    stopped = time.monotonic()
    assert re.search(r" store lease released name=chan_email:mailbox:info node=\S+:%d$"
                     % b.proc.pid, b.log(), re.M), b.log()[-3000:]
    a.wait_log(r" store lease taken name=chan_email:mailbox:info node=\S+:%d$" % a.proc.pid,
               timeout=5 * SLOW, after=after)
    assert time.monotonic() - stopped < 5 * SLOW
    mailserver.append(INFO, "INBOX", citizen_mail("Na de stop", "Vraag.\n"))
    contacts = wait_contacts(client, 2)
    assert sorted(c["subject"] for c in contacts) == ["Na de stop", "Na het herladen"]
    assert wait_for(lambda: len(registered(a)) == 1, 10 * SLOW), a.log()[-3000:]
