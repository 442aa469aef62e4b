"""POST /api/v1/forms/intake on two nodes sharing one register (docs/api.md, "Form engines"):
an engine that retries a submission at another node at the same moment races the first try on
contact_keys' unique constraint; the loser answers the winner's contact as a replay (200,
Idempotent-Replayed), never a 500, a 409 or a second contact; a retry with another body is a
422 even when the first try commits between its reads. pgsql only."""

import base64
import hashlib
import re
import threading
import uuid

import pytest

from api_fixtures import ORG_CONF, Api, finish_api, make_api
from conftest import SLOW, Loketd

pytestmark = pytest.mark.pgsql_only("nodes sharing one register (LOKET_TEST_DRIVER=pgsql)")

ROUTE = "/api/v1/forms/intake"
ROUNDS = 6
# The window a second body slipped through was one statement wide: more rounds to meet it.
BODY_ROUNDS = 16
THREADS = 8


@pytest.fixture
def nodes(tmp_path):
    """Node a and node b on a's register; the tokens are made on a before b starts (a node
    reads them when it starts)."""
    a = make_api(tmp_path / "node-a")
    a.token("f-intake", "intake")
    a.admin  # noqa: B018
    conninfo = re.findall(r"^conninfo = (.*)$", a.d.config_text, re.M)[-1]
    (tmp_path / "node-b").mkdir()
    d = Loketd(tmp_path / "node-b",
               extra=ORG_CONF + "\n[storage]\ndriver = pgsql\nconninfo = %s\n" % conninfo)
    d.start()
    b = Api(d)
    b.tokens = dict(a.tokens)
    yield a, b
    finish_api(b)
    finish_api(a)


def submission(attachment):
    return {"subject": "Melding %s" % uuid.uuid4().hex[:10], "body": "Losliggende stoeptegel.",
            "party": {"name": "Jan Peeters", "email": "jan.%s@example.be" % uuid.uuid4().hex[:8]},
            "attachments": [{"name": "foto.jpg", "content_type": "image/jpeg",
                             "data": base64.b64encode(attachment).decode()}]}


def race(a, b, bodies, key):
    """Posts bodies[i] with one key from THREADS threads at once, alternating the nodes."""
    answers, errors = [], []
    start = threading.Barrier(THREADS)

    def client(i):
        node = a if i % 2 else b
        start.wait()
        try:
            answers.append((i, node.call("POST", ROUTE, bodies[i % len(bodies)],
                                         token=node.tokens["f-intake"],
                                         headers={"Idempotency-Key": key},
                                         timeout=30 * SLOW)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    assert not errors, errors
    assert len(answers) == THREADS
    return answers


def contacts_with(api, subject):
    db = api.d.db()
    try:
        return [r[0] for r in db.execute("SELECT id FROM contacts WHERE subject = ?",
                                         (subject,)).fetchall()]
    finally:
        db.close()


def test_one_key_at_two_nodes_at_once_makes_one_contact_and_replays_it(nodes):
    a, b = nodes
    for _ in range(ROUNDS):
        photo = uuid.uuid4().bytes * 64
        body = submission(photo)
        answers = race(a, b, [body], str(uuid.uuid4()))
        statuses = sorted(r.status for _, r in answers)
        assert statuses == [200] * (THREADS - 1) + [201], [r for _, r in answers]
        for _, r in answers:
            replayed = {k.lower(): v for k, v in r.headers.items()}.get("idempotent-replayed")
            assert replayed == ("true" if r.status == 200 else None), r
        assert len({(r.json["id"], r.json["reference"]) for _, r in answers}) == 1, answers
        ids = contacts_with(a, body["subject"])
        assert ids == [answers[0][1].json["id"]], ids
        # Whichever node wrote it, both serve the file byte-identical.
        for node in (a, b):
            got = node.call("GET", "/api/v1/contacts/%d/attachments/%s"
                            % (ids[0], hashlib.sha256(photo).hexdigest()), token=a.admin)
            assert got.status == 200 and got.body == photo, got


def test_one_key_with_two_bodies_at_two_nodes_at_once_makes_one_contact(nodes):
    a, b = nodes
    for _ in range(BODY_ROUNDS):
        first, other = submission(b"een"), submission(b"twee")
        answers = race(a, b, [first, other], str(uuid.uuid4()))
        won = [(i, r) for i, r in answers if r.status == 201]
        assert len(won) == 1, [r for _, r in answers]
        winner = won[0][0] % 2  # the index of the body that won
        for i, r in answers:
            if i % 2 == winner:
                assert r.status in (200, 201), r
                assert r.json["id"] == won[0][1].json["id"], r
            else:
                assert r.status == 422, r
                assert "another request body" in r.json["detail"], r
        made = contacts_with(a, first["subject"]) + contacts_with(a, other["subject"])
        assert made == [won[0][1].json["id"]], made
