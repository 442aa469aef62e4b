"""POST /api/v1/forms/intake (docs/api.md, "Form engines"): an external form engine's
submission becomes a web contact with its files, exactly once per Idempotency-Key: a retry
answers the first try's contact (200, Idempotent-Replayed), whether it comes after the answer,
while the first is still held, at the same moment, or after a kill -9 between the write and
the answer. Both drivers."""

import base64
import hashlib
import threading
import time
import uuid

import pytest

from api_fixtures import assert_problem, finish_api, make_api, module_api
from conftest import SLOW, Loketd, wait_for

ROUTE = "/api/v1/forms/intake"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory, name="forms")


def submission(**extra):
    """A form's body with a subject no other test uses (how the tests find their contact)."""
    body = {"subject": "Aanvraag parkeerkaart %s" % uuid.uuid4().hex[:10],
            "body": "Ik verhuis naar de Kerkstraat en heb een bewonerskaart nodig.",
            "product": "parkeerkaart",
            "party": {"name": "Els Janssens",
                      "email": "els.%s@example.be" % uuid.uuid4().hex[:8]}}
    body.update(extra)
    return body


def post(api, body, key=None, token=None, timeout=None):
    headers = {"Idempotency-Key": key} if key is not None else None
    return api.call("POST", ROUTE, body, token=token or api.token("f-intake", "intake"),
                    headers=headers, timeout=timeout)


def new_key():
    return str(uuid.uuid4())


def contacts_with(api, subject):
    """The contacts a staff token sees with this subject."""
    items, _ = api.list_all(token=api.admin, channel="web")
    return [c for c in items if c["subject"] == subject]


def header(resp, name):
    return {k.lower(): v for k, v in resp.headers.items()}.get(name.lower())


def test_a_submission_is_201_and_a_retry_with_its_key_replays_the_same_contact(api):
    body, key = submission(), new_key()
    first = post(api, body, key)
    assert first.status == 201, first
    assert sorted(first.json) == ["id", "reference", "status"], first
    assert first.json["status"] == "open"
    assert header(first, "Location") == "/api/v1/contacts/%d" % first.json["id"]
    assert header(first, "Idempotent-Replayed") is None
    again = post(api, body, key)
    assert again.status == 200, again
    assert header(again, "Idempotent-Replayed") == "true"
    assert again.json == first.json
    stored = contacts_with(api, body["subject"])
    assert [c["id"] for c in stored] == [first.json["id"]], stored
    contact = api.contact(first.json["id"])
    assert contact["channel"] == "web"
    assert contact["reference"] == first.json["reference"]
    assert contact["product"] == "parkeerkaart"


def test_an_admin_token_may_submit_too(api):
    r = post(api, submission(), new_key(), token=api.admin)
    assert r.status == 201, r
    assert sorted(r.json) == ["id", "reference", "status"], r


def test_without_an_idempotency_key_the_submission_is_refused_and_nothing_stored(api):
    body = submission()
    r = post(api, body)
    assert_problem(r, 400, "Idempotency-Key", "required")
    assert contacts_with(api, body["subject"]) == []
    r = post(api, body, key="")
    assert_problem(r, 400, "Idempotency-Key")
    r = post(api, body, key="x" * 256)
    assert_problem(r, 400, "Idempotency-Key")
    assert contacts_with(api, body["subject"]) == []


def test_the_same_key_with_another_body_is_422_and_makes_nothing(api):
    key = new_key()
    first = post(api, submission(), key)
    assert first.status == 201, first
    other = submission()
    r = post(api, other, key)
    assert_problem(r, 422, "Idempotency-Key", "another request body")
    assert contacts_with(api, other["subject"]) == []


def test_a_key_of_post_contacts_is_not_a_form_key(api):
    """The same key on both routes names two submissions: no replay across routes."""
    token, key = api.token("f-intake", "intake"), new_key()
    body = submission()
    c = api.call("POST", "/api/v1/contacts", dict(body, channel="web"), token=token,
                 headers={"Idempotency-Key": key})
    assert c.status == 201, c
    f = post(api, body, key)
    assert f.status == 201, f
    assert f.json["id"] != c.json["id"]


def test_an_agent_token_may_not_submit_forms(api):
    body = submission()
    r = post(api, body, new_key(), token=api.agent)
    assert_problem(r, 403)
    r = api.call("POST", ROUTE, body, headers={"Idempotency-Key": new_key()})
    assert r.status == 401, r
    assert contacts_with(api, body["subject"]) == []


@pytest.mark.parametrize("channel", ["phone", "email", "counter", "", None, 7])
def test_a_body_naming_another_channel_than_web_is_422(api, channel):
    body = submission(channel=channel)
    r = post(api, body, new_key())
    assert_problem(r, 422, "channel", "web")
    assert contacts_with(api, body["subject"]) == []


def test_a_body_naming_channel_web_is_taken(api):
    r = post(api, submission(channel="web"), new_key())
    assert r.status == 201, r


def test_a_field_the_contacts_api_refuses_is_422_naming_it(api):
    r = post(api, submission(colour="blue"), new_key())
    assert_problem(r, 422, "colour")
    r = post(api, submission(party={"email": "geen-adres"}), new_key())
    assert_problem(r, 422, "email")


def test_attachments_are_kept_on_the_first_message_and_download_byte_identical(api):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40 + uuid.uuid4().bytes
    png = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes * 100
    files = [{"name": "uittreksel geboorte.pdf", "content_type": "application/pdf",
              "data": base64.b64encode(pdf).decode()},
             {"name": "foto.png", "content_type": "image/png",
              "data": base64.b64encode(png).decode()}]
    body = submission(attachments=files)
    r = post(api, body, new_key())
    assert r.status == 201, r
    cid = r.json["id"]
    msgs = api.ok("GET", "/api/v1/contacts/%d/messages" % cid)["items"]
    assert len(msgs) == 1, msgs
    assert msgs[0]["direction"] == "in" and msgs[0]["channel"] == "web", msgs[0]
    assert msgs[0]["body"] == body["body"]
    assert msgs[0]["attachments"] == [
        {"name": "uittreksel geboorte.pdf", "content_type": "application/pdf",
         "sha256": hashlib.sha256(pdf).hexdigest(), "size": len(pdf)},
        {"name": "foto.png", "content_type": "image/png",
         "sha256": hashlib.sha256(png).hexdigest(), "size": len(png)}]
    for data, ct in ((pdf, "application/pdf"), (png, "image/png")):
        got = api.call("GET", "/api/v1/contacts/%d/attachments/%s"
                       % (cid, hashlib.sha256(data).hexdigest()), token=api.agent)
        assert got.status == 200, got
        assert got.body == data
        assert got.content_type == ct


def test_a_submission_without_attachments_has_a_message_without_files(api):
    r = post(api, submission(), new_key())
    assert r.status == 201, r
    msgs = api.ok("GET", "/api/v1/contacts/%d/messages" % r.json["id"])["items"]
    assert [m["attachments"] for m in msgs] == [[]], msgs


@pytest.mark.parametrize("index", [0, 2])
def test_bad_base64_is_422_naming_the_attachment_and_makes_nothing(api, index):
    files = [{"name": "a%d.pdf" % i, "content_type": "application/pdf",
              "data": base64.b64encode(b"%PDF-1.4 ok").decode()} for i in range(3)]
    files[index]["data"] = "dit is geen base64!!"
    body = submission(attachments=files)
    r = post(api, body, new_key())
    assert_problem(r, 422, "attachments[%d].data" % index, "base64")
    assert contacts_with(api, body["subject"]) == []


def test_attachments_are_checked_as_the_messages_api_checks_them(api):
    ok = base64.b64encode(b"x").decode()
    cases = [
        ({"name": "../etc/passwd", "data": ok}, "attachments[0].name"),
        ({"name": "a.pdf", "content_type": "pdf", "data": ok}, "attachments[0].content_type"),
        ({"name": "a.pdf"}, "attachments[0].data"),
    ]
    for att, words in cases:
        r = post(api, submission(attachments=[att]), new_key())
        assert_problem(r, 422, words)
    r = post(api, submission(attachments=[{"name": "a%d" % i, "data": ok} for i in range(11)]),
             new_key())
    assert_problem(r, 422, "attachments", "at most 10")
    r = post(api, submission(attachments="a.pdf"), new_key())
    assert_problem(r, 422, "attachments")


def test_many_retries_at_the_same_moment_make_one_contact(api):
    body, key = submission(), new_key()
    answers, errors = [], []
    start = threading.Barrier(8)

    def client():
        start.wait()
        try:
            answers.append(post(api, body, key, timeout=30 * SLOW))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    statuses = sorted(r.status for r in answers)
    assert statuses == [200] * 7 + [201], answers
    assert len({(r.json["id"], r.json["reference"]) for r in answers}) == 1, answers
    assert len(contacts_with(api, body["subject"])) == 1


@pytest.fixture
def held(tmp_path, monkeypatch):
    """A daemon of the test's own that holds each fresh form answer for 20 s after the write
    (LOKET_TEST_HOLD_ANSWER_MS, core/lib/util.h)."""
    monkeypatch.setenv("LOKET_TEST_HOLD_ANSWER_MS", "20000")
    a = make_api(tmp_path / "held")
    yield a
    if a.d.running():
        a.d.proc.kill()
        a.d.proc.wait()
    finish_api(a)


def post_in_background(api, body, key):
    """Posts in a thread; returns (thread, answers) where answers gets the Resp or the error."""
    out = []

    def run():
        try:
            out.append(post(api, body, key, timeout=60 * SLOW))
        except Exception as e:  # noqa: BLE001 - the test looks at it
            out.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_kill_9_between_the_write_and_the_answer_then_the_retry_replays_it(held):
    api = held
    pdf = b"%PDF-1.4\n" + uuid.uuid4().bytes * 500
    body = submission(attachments=[{"name": "plan.pdf", "content_type": "application/pdf",
                                    "data": base64.b64encode(pdf).decode()}])
    key = new_key()
    api.admin  # noqa: B018 (the staff token, made before the kill)
    t, out = post_in_background(api, body, key)
    assert wait_for(lambda: contacts_with(api, body["subject"]), 15 * SLOW), api.d.log()[-2000:]
    assert out == [], "the answer came before the kill: %r" % out
    stored = contacts_with(api, body["subject"])
    api.d.proc.kill()
    api.d.proc.wait()
    t.join(20)
    assert not t.is_alive()
    assert len(out) == 1 and not hasattr(out[0], "status"), \
        "the engine got an answer although the daemon was killed first: %r" % out
    api.restart()
    again = post(api, body, key)
    assert again.status == 200, again
    assert header(again, "Idempotent-Replayed") == "true"
    assert again.json["id"] == stored[0]["id"]
    assert again.json["reference"] == stored[0]["reference"]
    after = contacts_with(api, body["subject"])
    assert [c["id"] for c in after] == [stored[0]["id"]], after
    # The file the first try kept survived the kill with it.
    got = api.call("GET", "/api/v1/contacts/%d/attachments/%s"
                   % (again.json["id"], hashlib.sha256(pdf).hexdigest()), token=api.admin)
    assert got.status == 200 and got.body == pdf, got


def test_a_retry_while_the_first_answer_is_still_held_gets_the_same_contact(held):
    api = held
    body, key = submission(), new_key()
    api.admin  # noqa: B018
    t, out = post_in_background(api, body, key)
    assert wait_for(lambda: contacts_with(api, body["subject"]), 15 * SLOW), api.d.log()[-2000:]
    started = time.monotonic()
    again = post(api, body, key)
    assert again.status == 200, again
    assert header(again, "Idempotent-Replayed") == "true"
    assert out == [], "the first answer was expected to be still held: %r" % out
    assert time.monotonic() - started < 15, "the replay waited for the first answer"
    t.join(60 * SLOW)
    assert len(out) == 1 and out[0].status == 201, out
    assert out[0].json == again.json
    assert len(contacts_with(api, body["subject"])) == 1


def test_a_test_hold_that_is_no_number_stops_the_start_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LOKET_TEST_HOLD_ANSWER_MS", "2s")
    d = Loketd(tmp_path)
    try:
        assert d.start_fails() != 0
    finally:
        d.close()
    assert "LOKET_TEST_HOLD_ANSWER_MS" in d.log(), d.log()
