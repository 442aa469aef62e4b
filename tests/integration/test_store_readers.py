"""Reads run on the register's reader threads: a slow read holds up neither intake nor
other reads, and a read after a write's answer sees that write."""
import sqlite3
import statistics
import threading
import time

import pytest

from api_fixtures import finish_api, make_api, unique_email

# [storage] readers are the SQLite driver's reader connections; the large history is
# written straight into the SQLite file.
pytestmark = pytest.mark.sqlite_only(reason="the SQLite driver's reader threads")

# Contacts of the one large party; the backoffice token sees only the oldest of them, so
# its history read walks all of them: a read that is slow by construction.
LARGE_HISTORY = 300000


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    api = make_api(tmp_path_factory.mktemp("readers"))
    email = unique_email("groot")
    first = api.create(channel="phone", department="burgerzaken", subject="de eerste",
                       party={"email": email})
    pid = first["party_id"]
    assert api.d.stop() == 0
    api.d.close()
    api.d.proc = None
    db = sqlite3.connect(api.db_path)
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO contacts (reference, channel, direction, received_at, updated_at,"
        " party_id, subject, body, department, organisation, created_by)"
        " SELECT 'BULK-' || i, 'phone', 'in', received_at, updated_at, party_id, 'bulk', '',"
        " 'omgeving', organisation, created_by FROM n, contacts WHERE contacts.id = ?",
        (LARGE_HISTORY, first["id"]))
    db.commit()
    db.close()
    api.d.start()
    api.backoffice = api.token("t-burgerzaken", "backoffice", departments=("burgerzaken",))
    api.pid = pid
    api.email = email
    api.first = first
    yield api
    finish_api(api)


def slow_read(api):
    """The large party's history as the backoffice token sees it: one contact."""
    t0 = time.monotonic()
    r = api.call("GET", "/api/v1/parties/%d/contacts?limit=500" % api.pid,
                 token=api.backoffice, timeout=120)
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert [c["id"] for c in r.json["items"]] == [api.first["id"]], r
    return took


class Hammer:
    """n threads reading the slow history in a loop until stopped."""

    def __init__(self, api, n):
        self.api, self.stop, self.reads, self.errors = api, threading.Event(), 0, []
        self.threads = [threading.Thread(target=self.run) for _ in range(n)]

    def run(self):
        while not self.stop.is_set():
            try:
                slow_read(self.api)
                self.reads += 1
            except Exception as e:  # reported by the test, not lost in the thread
                self.errors.append(repr(e))
                return

    def __enter__(self):
        for t in self.threads:
            t.start()
        time.sleep(0.5)  # every thread is inside a read
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=300)
        assert not self.errors, self.errors[:3]
        assert self.reads > 0


def the_slow_read(api):
    took = statistics.median(slow_read(api) for _ in range(3))
    # The test means something only when the read is slow next to a post.
    assert took >= 0.03, "the large history read took only %.1f ms" % (took * 1000)
    return took


def test_slow_reads_hold_up_neither_intake_nor_read_your_write(big):
    api = big
    slow = the_slow_read(api)
    posted = []
    with Hammer(api, 8):
        for i in range(20):
            t0 = time.monotonic()
            r = api.call("POST", "/api/v1/contacts",
                         {"channel": "phone", "subject": "tijdens het lezen %d" % i,
                          "party": {"email": api.email}}, token=api.agent, timeout=60)
            posted.append(time.monotonic() - t0)
            assert r.status == 201, r
            cid = r.json["id"]
            # Read-your-write: the contact and the party's history have it at once.
            assert api.contact(cid, token=api.agent)["subject"] == "tijdens het lezen %d" % i
            newest = api.list("/api/v1/parties/%d/contacts" % api.pid, token=api.agent,
                              limit=1)["items"]
            assert [c["id"] for c in newest] == [cid]
    print("history read %.1f ms; posts under 8 history readers: median %.1f ms, max %.1f ms"
          % (slow * 1000, statistics.median(posted) * 1000, max(posted) * 1000))
    # On the loop, a post waited for the history reads ahead of it: at least half of one.
    assert statistics.median(posted) < slow / 3, (
        "posts took %.1f ms (median) while one history read takes %.1f ms"
        % (statistics.median(posted) * 1000, slow * 1000))


def test_a_slow_read_does_not_hold_up_other_reads(big):
    api = big
    slow = the_slow_read(api)
    fast = []
    with Hammer(api, 2):
        for _ in range(20):
            t0 = time.monotonic()
            doc = api.contact(api.first["id"], token=api.agent)
            fast.append(time.monotonic() - t0)
            assert doc["id"] == api.first["id"]
    print("history read %.1f ms; contact reads beside 2 history readers: median %.1f ms"
          % (slow * 1000, statistics.median(fast) * 1000))
    assert statistics.median(fast) < slow / 3, (
        "a contact read took %.1f ms (median) beside history reads of %.1f ms"
        % (statistics.median(fast) * 1000, slow * 1000))
