"""A 201 means durable: kill -9 under concurrent load, restart on the same data_dir, and every
acknowledged contact is there exactly once, with an intact database (docs/api.md: "Answers
201 with the stored contact, after it is durable")."""

import http.client
import json
import os
import random
import threading
import time

from api_fixtures import finish_api, make_api

ROUNDS = 20
THREADS = 8
BUDGET = 90  # seconds for all rounds; the rounds shorten their load to stay inside it


def post_loop(d, token, marker, stop, acked, errors):
    """Posts contacts until the daemon goes away; records (reference, subject) of every 201."""
    conn = http.client.HTTPConnection(d.host, d.port, timeout=10)
    n = 0
    try:
        while not stop.is_set():
            subject = "%s-%d" % (marker, n)
            n += 1
            body = json.dumps({"channel": "web", "subject": subject,
                               "meta": {"marker": marker}}).encode()
            try:
                conn.request("POST", "/api/v1/contacts", body=body,
                             headers={"Authorization": "Bearer " + token,
                                      "Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                return  # killed: whatever was not answered in full was never acknowledged
            if resp.status == 201:
                doc = json.loads(data)
                acked.append((doc["reference"], subject, doc["id"]))
            else:
                errors.append((resp.status, data[:300]))
                return
    finally:
        conn.close()


def all_contacts(api, token):
    items, _ = api.list_all(token=token, limit=500)
    return items


def check_acked(api, token, acked):
    items = all_contacts(api, token)
    refs = [c["reference"] for c in items]
    assert len(refs) == len(set(refs)), "duplicate references after restart: %s" % sorted(
        r for r in set(refs) if refs.count(r) > 1)[:10]
    ids = [c["id"] for c in items]
    assert len(ids) == len(set(ids)), "duplicate ids after restart"
    stored = {c["reference"]: c for c in items}
    missing = [ref for ref, _, _ in acked if ref not in stored]
    assert not missing, "%d acknowledged contacts lost, e.g. %s" % (len(missing), missing[:10])
    wrong = [(ref, subject, stored[ref]["subject"]) for ref, subject, _ in acked
             if stored[ref]["subject"] != subject]
    assert not wrong, "acknowledged contacts stored with another subject: %s" % wrong[:10]
    acked_refs = [ref for ref, _, _ in acked]
    assert len(acked_refs) == len(set(acked_refs)), "one reference acknowledged twice"
    return len(items)


def test_kill_9_under_load_loses_no_acknowledged_contact(tmp_path):
    rng = random.Random(int(os.environ.get("LOKET_DURABILITY_SEED", "0")) or None)
    api = make_api(tmp_path / "daemon")
    try:
        admin = api.token("dur-admin", "admin")
        intake = api.token("dur-intake", "intake")
        acked, per_round = [], []
        started = time.monotonic()
        for rnd in range(ROUNDS):
            left = BUDGET - (time.monotonic() - started)
            share = max(0.2, min(1.0, left / (ROUNDS - rnd) / 3))
            stop, errors, got = threading.Event(), [], []
            threads = [threading.Thread(target=post_loop,
                                        args=(api.d, intake, "r%02dt%d" % (rnd, t), stop, got,
                                              errors))
                       for t in range(THREADS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, share))
            api.d.proc.kill()
            api.d.proc.wait()
            stop.set()
            for t in threads:
                t.join(20)
                assert not t.is_alive(), "a client thread hangs after kill -9"
            assert not errors, "non-201 answers under load: %s" % errors[:5]
            acked += got
            per_round.append(len(got))

            check = api.integrity_check(str(tmp_path / ("copy%d" % rnd)))
            assert check == ["ok"], "round %d: integrity_check after kill -9: %s" % (rnd, check)

            api.restart()
            r = api.call("GET", "/api/v1/contacts?limit=1", token=intake)
            assert r.status == 403, "after restart the intake token is still known: %r" % r
            stored = check_acked(api, admin, acked)
            assert stored >= len(acked)
        assert sum(per_round) >= ROUNDS, "hardly any contact was acknowledged: %s" % per_round
        print("acknowledged per round: %s; total %d; %.1fs" % (
            per_round, sum(per_round), time.monotonic() - started))

        assert api.d.stop() == 0, api.d.log()
        assert api.integrity_check(str(tmp_path / "final")) == ["ok"]
    finally:
        finish_api(api)


def test_clean_restart_keeps_contacts_tokens_and_references(tmp_path):
    api = make_api(tmp_path / "daemon")
    try:
        agent = api.token("keep-agent", "agent")
        before = [api.create(token=agent, channel="phone", subject="voor %d" % i,
                             party={"email": "keep@example.be"}) for i in range(5)]
        api.action(before[0]["id"], "resolve", {"answer": "klaar"}, token=agent)
        api.action(before[1]["id"], "escalate", {"department": "omgeving", "reason": "x"},
                   token=agent)
        snapshot = {c["id"]: api.contact(c["id"], token=agent) for c in before}
        api.restart()
        # the token made before the restart still works
        for cid, doc in snapshot.items():
            assert api.contact(cid, token=agent) == doc
        after = api.create(token=agent, channel="phone", party={"email": "KEEP@example.be"})
        assert after["party_id"] == before[0]["party_id"]
        assert int(after["reference"][5:]) > max(int(c["reference"][5:]) for c in before)
        assert after["id"] > max(c["id"] for c in before)
        tasks = api.tasks(token=agent, status="open")
        assert [t["contact_id"] for t in tasks] == [before[1]["id"]]
    finally:
        finish_api(api)
