"""GET /api/v1/search (docs/api.md): contacts and parties by their words, accent- and
case-blind, newest first, scoped like every read; identifiers typed whole are looked up
exactly. The same file runs on both storage drivers (LOKET_TEST_DRIVER=pgsql): every answer
is compared with the ids the test expects, so both drivers must give the same results."""

import sqlite3
import time
import unicodedata
import uuid

import pytest

from api_fixtures import (ORG_CONF, Api, assert_problem, finish_api, module_api, query,
                          unique_email, valid_rrn)
from conftest import DRIVER, REGISTERS, Loketd


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    yield from module_api(tmp_path_factory, name="search")


def tag():
    """A word no other test's contacts hold (letters and digits: one folded word)."""
    return "z" + uuid.uuid4().hex[:10]


def search(api, q, token=None, **params):
    r = api.call("GET", query("/api/v1/search", q=q, **params), token=token or api.admin)
    assert r.status == 200, r
    assert "no-store" in (r.headers.get("Cache-Control") or ""), r.headers
    return r.json


def contact_ids(api, q, token=None, **params):
    return [c["id"] for c in search(api, q, token=token, **params)["contacts"]]


def party_ids(api, q, token=None, **params):
    return [p["id"] for p in search(api, q, token=token, **params)["parties"]]


def tok(api, who):
    return {
        "agent-gemeente": lambda: api.token("s-agent-gemeente", "agent", organisation="gemeente"),
        "agent-ocmw": lambda: api.token("s-agent-ocmw", "agent", organisation="ocmw"),
        "bo-burgerzaken": lambda: api.token("s-bo-burgerzaken", "backoffice",
                                            departments=("burgerzaken",),
                                            organisation="gemeente"),
        "bo-omgeving": lambda: api.token("s-bo-omgeving", "backoffice", departments=("omgeving",),
                                         organisation="gemeente"),
    }[who]()


@pytest.fixture(scope="module")
def words(api):
    """Contacts whose words differ in accents, case and layout, oldest first."""
    t = tag()
    made = [
        api.create(subject="Vraag van mevrouw Peetërs %s" % t, body="over haar paspoort",
                   department="burgerzaken"),
        api.create(subject="Terugbelverzoek %s" % t, body="De heer PEETERS belt over de Straße",
                   department="omgeving"),
        api.create(subject="peeters %s" % t, body="", department="burgerzaken"),
        api.create(subject="Œuvre d'art %s" % t, body="Ĳsselmeer, Łódź & Dvořák",
                   department="burgerzaken"),
    ]
    return t, [c["id"] for c in made]


# the query table: (query with {t} for the module's word, indexes into words' contacts,
# newest first). Both drivers must answer each exactly so.
QUERIES = [
    ("Peeters {t}", [2, 1, 0]),
    ("peeters {t}", [2, 1, 0]),
    ("Peetërs {t}", [2, 1, 0]),
    ("PEËTERS {t}", [2, 1, 0]),
    ("pe\u0301eters {t}", [2, 1, 0]),        # a combining accent (NFD), as some keyboards send
    ("{t}", [3, 2, 1, 0]),
    ("{T}", [3, 2, 1, 0]),
    ("paspoort {t}", [0]),
    ("PASPOORT, {t}!", [0]),
    ("strasse {t}", [1]),
    ("straße {t}", [1]),
    ("oeuvre {t}", [3]),
    ("ijsselmeer lodz {t}", [3]),
    ("LÓDŹ dvorak {t}", [3]),
    ("pees {t}", []),                         # contact words match whole, not as prefixes
    ("peeters paspoort terugbelverzoek {t}", []),   # every word must be there
]


@pytest.mark.parametrize("q,want", QUERIES)
def test_query_table_accent_and_case_blind_newest_first(api, words, q, want):
    t, ids = words
    got = contact_ids(api, q.replace("{t}", t).replace("{T}", t.upper()))
    assert got == [ids[i] for i in want], (q, got)


def test_search_item_is_the_contact_list_item(api, words):
    t, ids = words
    found = search(api, t)["contacts"]
    listed = {c["id"]: c for c in api.list("/api/v1/contacts", limit=500)["items"]}
    assert found and all(c == listed[c["id"]] for c in found), found


def test_limit_and_type(api, words):
    t, ids = words
    assert contact_ids(api, t, limit=2) == [ids[3], ids[2]]
    doc = search(api, t, type="parties")
    assert doc["contacts"] == [] and doc["parties"] == [], doc
    assert search(api, t, type="contacts")["contacts"] != []


# parties ---------------------------------------------------------------------------------


def test_party_names_match_by_prefix_accent_blind(api):
    t = tag()
    older = api.create(subject="vraag", party={"name": "Mariëtte Van Ransbeeck%s" % t,
                                                "email": unique_email("mariette")})["party_id"]
    newer = api.create(subject="vraag", party={"name": "MARIETTE Vanransbeeck%s" % t,
                                                "email": unique_email("mariette")})["party_id"]
    assert party_ids(api, "mariette vanransbeeck%s" % t) == [newer]
    assert party_ids(api, "mariëtte ransbeeck%s" % t) == [older]
    assert party_ids(api, "mar ransbeeck%s" % t[:6]) == [older]
    assert party_ids(api, "MARIET %s" % t[:8]) == []                  # a word of its own
    assert party_ids(api, "ransbeeck%s mariette" % t) == [older]   # any order of the words
    assert party_ids(api, "riette ransbeeck%s" % t) == []           # a prefix, not a substring
    # a contact's words are no party's name
    assert party_ids(api, "vraag ransbeeck%s" % t) == []


def test_party_shape_is_the_party_read(api):
    t = tag()
    pid = api.create(subject="vraag", party={"name": "Gust %s" % t,
                                             "email": unique_email("gust")})["party_id"]
    found = search(api, "gust %s" % t)["parties"]
    assert found == [api.ok("GET", "/api/v1/parties/%d" % pid, token=api.agent)], found


def test_merged_party_is_found_as_the_party_that_took_it_over(api):
    t = tag()
    a = api.create(subject="vraag", party={"name": "Hendrik %s" % t,
                                           "email": unique_email("hendrik")})
    b = api.create(subject="vraag %s" % t, party={"name": "Hendrik %s" % t,
                                                  "email": unique_email("hendrik")})
    assert party_ids(api, "hendrik %s" % t) == [b["party_id"], a["party_id"]]
    api.ok("POST", "/api/v1/parties/%d/merge" % a["party_id"], {"party": b["party_id"]})
    assert party_ids(api, "hendrik %s" % t) == [a["party_id"]]
    # the moved contact is found with the party that has it now
    found = search(api, "vraag %s" % t)["contacts"]
    assert [c["id"] for c in found] == [b["id"]] and found[0]["party_id"] == a["party_id"]


# identifiers, found whole ----------------------------------------------------------------


@pytest.fixture(scope="module")
def citizen(api):
    t = tag()
    email = "an.smet-%s@example.be" % t
    rrn = valid_rrn(417)
    first = api.create(channel="phone", subject="eerste vraag",
                       party={"name": "An Smet", "email": email, "phone": "0471 12 34 56",
                              "rrn": rrn})
    second = api.create(channel="email", subject="tweede vraag", party={"email": email})
    # words of the identifiers, in another party's contact: split into words they would match
    decoy = api.create(channel="web", subject="an smet %s example be 0471 12 34 56" % t,
                       body=rrn, party={"email": unique_email("decoy")})
    return {"t": t, "email": email, "rrn": rrn, "party": first["party_id"],
            "contacts": [second["id"], first["id"]], "decoy": decoy["id"]}


@pytest.mark.parametrize("typed", ["0471 12 34 56", "+32471123456", "0471/12.34.56",
                                   "+32 471 12-34-56", "0032471123456"])
def test_phone_typed_in_any_layout_finds_the_party_whole(api, citizen, typed):
    doc = search(api, typed)
    assert [p["id"] for p in doc["parties"]] == [citizen["party"]], doc
    assert [c["id"] for c in doc["contacts"]] == citizen["contacts"], doc


def test_email_finds_the_party_whole(api, citizen):
    for typed in (citizen["email"], citizen["email"].upper(), "  %s " % citizen["email"]):
        doc = search(api, typed)
        assert [p["id"] for p in doc["parties"]] == [citizen["party"]], (typed, doc)
        assert [c["id"] for c in doc["contacts"]] == citizen["contacts"], (typed, doc)
    # the decoy holds the email's words, the phone's digits and the RRN: a word search finds it
    assert contact_ids(api, "an smet %s example be" % citizen["t"]) == [citizen["decoy"]]
    assert party_ids(api, "nobody-%s@example.be" % citizen["t"]) == []


def test_reference_finds_that_contact_whole(api, citizen):
    first = api.contact(citizen["contacts"][1])
    assert contact_ids(api, first["reference"]) == [first["id"]]
    assert contact_ids(api, first["reference"], token=api.agent) == [first["id"]]


def test_rrn_finds_the_party_whole_and_is_audited_without_the_number(api, citizen):
    rrn = citizen["rrn"]
    typed = "%s.%s.%s-%s.%s" % (rrn[0:2], rrn[2:4], rrn[4:6], rrn[6:9], rrn[9:11])
    token = api.token("s-rrn", "agent")
    for q in (rrn, typed):
        doc = search(api, q, token=token)
        assert [p["id"] for p in doc["parties"]] == [citizen["party"]], doc
        assert [c["id"] for c in doc["contacts"]] == citizen["contacts"], doc
    deadline = time.monotonic() + 5
    while True:
        con = api.db()
        try:
            rows = con.execute("SELECT action, object FROM audit WHERE token = ? ORDER BY id",
                               ("s-rrn",)).fetchall()
        finally:
            con.close()
        if len(rows) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [tuple(r) for r in rows] == [("search.rrn", "search")] * 2, rows
    assert rrn not in api.d.log() and typed not in api.d.log()


def test_rrn_with_a_wrong_checksum_is_refused_naming_q(api):
    r = api.call("GET", query("/api/v1/search", q="85.01.01-001.00"), token=api.agent)
    assert_problem(r, 422, "q", "national register number")
    assert b"85.01.01" not in r.body


# scope -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scoped(api):
    t = tag()
    return t, {
        "burgerzaken": api.create(subject="dossier %s" % t, department="burgerzaken")["id"],
        "omgeving": api.create(subject="dossier %s" % t, department="omgeving")["id"],
        "confidential": api.create(token=api.admin, subject="dossier %s" % t,
                                   department="sociale_dienst", confidential=True,
                                   party={"name": "Karel Geheim%s" % t,
                                          "email": unique_email("geheim")})["id"],
    }


@pytest.mark.parametrize("who,sees", [
    ("bo-burgerzaken", ["burgerzaken"]),
    ("bo-omgeving", ["omgeving"]),
    ("agent-gemeente", ["omgeving", "burgerzaken"]),
    ("agent-ocmw", ["confidential", "omgeving", "burgerzaken"]),
    ("admin", ["confidential", "omgeving", "burgerzaken"]),
])
def test_scope_departments_and_confidential_contacts(api, scoped, who, sees):
    t, ids = scoped
    token = api.admin if who == "admin" else tok(api, who)
    assert contact_ids(api, "dossier %s" % t, token=token) == [ids[k] for k in sees]
    # the party known only through a confidential contact of the OCMW
    found = party_ids(api, "karel geheim%s" % t, token=token)
    assert (found != []) == ("confidential" in sees), found


def test_backoffice_of_one_department_never_gets_anothers_contacts(api, scoped):
    t, ids = scoped
    doc = search(api, t, token=tok(api, "bo-burgerzaken"), limit=100)
    assert [c["id"] for c in doc["contacts"]] == [ids["burgerzaken"]], doc
    assert all(c["department"] == "burgerzaken" for c in doc["contacts"])


@pytest.fixture(scope="module")
def spread(api):
    """Contacts of one query word over three departments and both organisations, open and
    confidential: what each scope must find of them is the rule of docs/api.md, not what the
    index holds."""
    t = tag()

    def make(key, department, confidential):
        return key, api.create(token=api.admin, subject="aanvraag %s" % t, body="spreiding",
                               department=department, confidential=confidential)["id"]

    # oldest first: the answers are newest first
    return t, dict([
        make("bz", "burgerzaken", False),
        make("omg", "omgeving", False),
        make("sd", "sociale_dienst", False),
        make("bz-conf", "burgerzaken", True),       # organisation gemeente
        make("sd-conf", "sociale_dienst", True),    # organisation ocmw
        make("omg-conf", "omgeving", True),         # organisation gemeente
    ])


SPREAD_ORDER = ["omg-conf", "sd-conf", "bz-conf", "sd", "omg", "bz"]


@pytest.mark.parametrize("departments,organisation,sees", [
    (("burgerzaken", "sociale_dienst"), "gemeente", ["bz-conf", "sd", "bz"]),
    (("burgerzaken", "sociale_dienst"), "ocmw", ["sd-conf", "sd", "bz"]),
    (("sociale_dienst", "burgerzaken"), None, ["sd", "bz"]),
    (("burgerzaken", "omgeving"), "gemeente", ["omg-conf", "bz-conf", "omg", "bz"]),
    (("omgeving",), "ocmw", ["omg"]),
])
def test_backoffice_of_two_departments_finds_both_and_only_its_organisations_confidential(
        api, spread, departments, organisation, sees):
    t, ids = spread
    name = "s-bo-%s-%s" % ("-".join(departments), organisation)
    token = api.token(name, "backoffice", departments=departments, organisation=organisation)
    want = [ids[k] for k in SPREAD_ORDER if k in sees]
    # one word, two words, three: the scope is the same whatever the words
    for q in ("%s" % t, "aanvraag %s" % t, "Aanvraag spreiding %s" % t):
        assert contact_ids(api, q, token=token, limit=100) == want, (q, sees)
    # the contact list agrees: search finds what the caller may read, no more, no less
    listed = [c["id"] for c in api.list_all(token=token)[0] if c["id"] in ids.values()]
    assert sorted(listed) == sorted(want)


@pytest.mark.parametrize("organisation,sees", [
    ("gemeente", ["omg-conf", "bz-conf", "sd", "omg", "bz"]),
    ("ocmw", ["sd-conf", "sd", "omg", "bz"]),
    (None, ["sd", "omg", "bz"]),
])
def test_agent_finds_every_department_and_only_its_organisations_confidential(
        api, spread, organisation, sees):
    t, ids = spread
    token = api.token("s-agent-spread-%s" % organisation, "agent", organisation=organisation)
    want = [ids[k] for k in SPREAD_ORDER if k in sees]
    for q in ("%s" % t, "aanvraag spreiding %s" % t):
        assert contact_ids(api, q, token=token, limit=100) == want, (q, sees)
    assert contact_ids(api, "aanvraag spreiding %s" % t, limit=100) == \
        [ids[k] for k in SPREAD_ORDER]


def test_confidential_contacts_of_another_organisation_never_fill_the_limit(api):
    """The index answers the scope itself: a backoffice of gemeente asking for the newest 2
    gets its 2 contacts, though newer confidential contacts of the OCMW hold the same words
    (a filter applied after the index's LIMIT would leave it with none)."""
    t = tag()
    mine = [api.create(token=api.admin, subject="geheim %s" % t, department="sociale_dienst")
            ["id"] for _ in range(2)]
    for _ in range(3):
        api.create(token=api.admin, subject="geheim %s" % t, department="sociale_dienst",
                   confidential=True)
    token = api.token("s-bo-sd-gemeente", "backoffice", departments=("sociale_dienst",),
                      organisation="gemeente")
    assert contact_ids(api, "geheim %s" % t, token=token, limit=2) == mine[::-1]


# department names that are query syntax: each is one hex token, whatever it holds
CRAFTED = ['x" OR scope:"c0', "x' | '#c0", "x) OR (y", "a b*"]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    conf = ORG_CONF + "".join("[department.%s]\norganisation = gemeente\n" % d
                              for d in CRAFTED)
    d = Loketd(tmp_path_factory.mktemp("search-crafted"), extra=conf)
    d.start()
    a = Api(d)
    yield a
    finish_api(a)


def test_department_named_like_query_syntax_sees_only_its_own_contacts(crafted):
    api, t = crafted, tag()
    mine = {d: api.create(token=api.admin, subject="dossier %s" % t, department=d)["id"]
            for d in CRAFTED}
    others = [api.create(token=api.admin, subject="dossier %s" % t, department=d,
                         confidential=conf)["id"]
              for d, conf in (("burgerzaken", False), ("omgeving", True),
                              ("sociale_dienst", True))]
    for i, d in enumerate(CRAFTED):
        token = api.token("s-crafted-%d" % i, "backoffice", departments=(d,),
                          organisation="gemeente")
        assert contact_ids(api, "dossier %s" % t, token=token) == [mine[d]], d
    assert contact_ids(api, "dossier %s" % t) == others[::-1] + \
        [mine[d] for d in CRAFTED][::-1]


# the index follows every change ----------------------------------------------------------


def test_index_follows_a_patch_of_the_subject(api):
    t = tag()
    c = api.create(subject="oudonderwerp %s" % t, department="burgerzaken")
    assert contact_ids(api, "oudonderwerp %s" % t) == [c["id"]]
    api.ok("PATCH", "/api/v1/contacts/%d" % c["id"], {"subject": "Nieuw Ónderwerp %s" % t})
    assert contact_ids(api, "oudonderwerp %s" % t) == []
    assert contact_ids(api, "nieuw onderwerp %s" % t) == [c["id"]]


def test_index_follows_the_answer_of_a_resolve(api):
    t = tag()
    c = api.create(subject="vraag %s" % t, department="burgerzaken")
    assert contact_ids(api, "afspraakbevestiging %s" % t) == []
    api.action(c["id"], "resolve", {"answer": "Afspraakbevestiging verstuurd, %s" % t})
    assert contact_ids(api, "afspraakbevestiging %s" % t) == [c["id"]]


def test_index_follows_a_move_to_another_department(api):
    t = tag()
    c = api.create(subject="verhuis %s" % t, department="burgerzaken")
    bo_omgeving = tok(api, "bo-omgeving")
    assert contact_ids(api, "verhuis %s" % t, token=bo_omgeving) == []
    api.ok("PATCH", "/api/v1/contacts/%d" % c["id"], {"department": "omgeving"})
    assert contact_ids(api, "verhuis %s" % t, token=bo_omgeving) == [c["id"]]
    assert contact_ids(api, "verhuis %s" % t, token=tok(api, "bo-burgerzaken")) == []


def test_index_follows_an_escalation_and_a_forward_to_another_department(api):
    t = tag()
    bo = {d: api.token("s-bo-move-%s" % d, "backoffice", departments=(d,),
                       organisation="gemeente")
          for d in ("burgerzaken", "omgeving", "sociale_dienst")}

    def finders(cid):
        return sorted(d for d, token in bo.items()
                      if contact_ids(api, "verhuisd dossier %s" % t, token=token) == [cid])

    c = api.create(token=api.admin, subject="verhuisd dossier %s" % t,
                   department="burgerzaken")["id"]
    assert finders(c) == ["burgerzaken"]
    doc = api.action(c, "escalate", {"department": "omgeving", "reason": "bouwaanvraag"})
    assert doc["department"] == "omgeving"
    assert finders(c) == ["omgeving"]
    task = [x for x in doc["tasks"] if x["status"] == "open"][0]
    r = api.call("POST", "/api/v1/tasks/%d/forward" % task["id"],
                 {"department": "sociale_dienst", "reason": "hoort bij het OCMW"},
                 token=api.admin)
    assert r.status == 200 and r.json["department"] == "sociale_dienst", r
    assert finders(c) == ["sociale_dienst"]


def test_confidential_contact_moved_within_its_organisation_is_found_in_the_new_department(api):
    t = tag()
    c = api.create(token=api.admin, subject="vertrouwelijk verhuisd %s" % t,
                   department="burgerzaken", confidential=True)["id"]
    bz = api.token("s-bo-conf-bz", "backoffice", departments=("burgerzaken",),
                   organisation="gemeente")
    omg = api.token("s-bo-conf-omg", "backoffice", departments=("omgeving",),
                    organisation="gemeente")
    q = "vertrouwelijk verhuisd %s" % t
    assert (contact_ids(api, q, token=bz), contact_ids(api, q, token=omg)) == ([c], [])
    api.ok("PATCH", "/api/v1/contacts/%d" % c, {"department": "omgeving"})
    assert (contact_ids(api, q, token=bz), contact_ids(api, q, token=omg)) == ([], [c])


# bad queries -----------------------------------------------------------------------------


@pytest.mark.parametrize("params,status,words", [
    ({}, 422, ["q"]),
    ({"q": ""}, 422, ["q"]),
    ({"q": "   "}, 422, ["q"]),
    ({"q": "?!... -- //"}, 422, ["q", "letters or digits"]),
    ({"q": "é" * 201}, 422, ["q", "200 characters"]),
    ({"q": "jan", "limit": "0"}, 400, ["limit"]),
    ({"q": "jan", "limit": "101"}, 400, ["limit"]),
    ({"q": "jan", "type": "tasks"}, 400, ["type"]),
])
def test_bad_query_is_a_clear_problem(api, params, status, words):
    r = api.call("GET", query("/api/v1/search", **params), token=api.agent)
    assert_problem(r, status, *words)


def test_long_query_of_200_characters_is_fine(api):
    assert search(api, "é" * 200, token=api.agent) == {"contacts": [], "parties": []}
    assert search(api, "é " * 99 + "é", token=api.agent) == {"contacts": [], "parties": []}


def test_letters_the_index_keeps_no_word_of_find_nothing(api):
    """A word longer than any indexed one, or Greek letters: nothing found, not a 422."""
    assert search(api, "x" * 65, token=api.agent) == {"contacts": [], "parties": []}
    assert search(api, "Αθήνα", token=api.agent) == {"contacts": [], "parties": []}


def test_search_needs_a_staff_token(api):
    assert_problem(api.call("GET", query("/api/v1/search", q="jan")), 401)
    intake = api.token("s-intake", "intake")
    assert_problem(api.call("GET", query("/api/v1/search", q="jan"), token=intake), 403)


# a register written before the search index ----------------------------------------------


def test_migration_builds_the_index_for_an_existing_register(api):
    """The register taken back to the schema before the index (its index gone): the
    migration that adds it finds the contacts and parties written before."""
    t = tag()
    c = api.create(subject="Oude Aanvraag %s" % t, department="burgerzaken",
                   party={"name": "Oudë Burger%s" % t, "email": unique_email("oud")})
    assert api.d.stop() == 0
    if DRIVER == "pgsql":
        cluster = REGISTERS.start()
        cluster.psql_run(
            "DROP TRIGGER contacts_search_insert ON contacts;"
            " DROP TRIGGER contacts_search_update ON contacts;"
            " DROP TRIGGER parties_search ON parties;"
            " ALTER TABLE contacts DROP COLUMN search; ALTER TABLE parties DROP COLUMN search;"
            " DROP FUNCTION loket_contacts_search_tg(), loket_parties_search_tg(),"
            " loket_contact_search(text, text, text, text, text, text, boolean),"
            " loket_scope_token(text, text), loket_words(text), loket_fold(text);"
            " UPDATE loket_schema SET version = 2", db=REGISTERS.database_of(api.d))
    else:
        con = sqlite3.connect(api.db_path)
        try:
            for trigger in ("contacts_fts_insert", "contacts_fts_update", "contacts_fts_delete",
                            "parties_fts_insert", "parties_fts_update", "parties_fts_delete"):
                con.execute("DROP TRIGGER %s" % trigger)
            for table in ("contacts_fts", "parties_fts", "contacts_fts_pending",
                          "parties_fts_pending"):
                con.execute("DROP TABLE %s" % table)
            con.execute("PRAGMA user_version = 7")
            con.commit()
        finally:
            con.close()
    api.restart()
    assert contact_ids(api, "oude aanvraag %s" % t) == [c["id"]]
    assert party_ids(api, "oude burger%s" % t[:5]) == [c["party_id"]]
    # and it goes on following what is written after
    d = api.create(subject="Nieuwe aanvraag %s" % t, department="burgerzaken")
    assert contact_ids(api, "aanvraag %s" % t) == [d["id"], c["id"]]


def old_fold(*texts):
    """Near enough loketd's fold for the words a register of the old scope tokens held."""
    plain = unicodedata.normalize("NFKD", " ".join(t for t in texts if t))
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    return " ".join("".join(c if c.isascii() and c.isalnum() else " " for c in plain).split())


def old_scope(department, organisation, confidential):
    """The scope tokens schema 8 wrote: department, organisation, c0/c1, each on its own."""
    hexed = lambda v: (v or "").encode().hex()
    return " ".join((["d" + hexed(department)] if department is not None else []) +
                    ["o" + hexed(organisation), "c1" if confidential else "c0"])


def test_migration_rebuilds_the_scope_tokens_of_an_existing_register(api, spread):
    """A register indexed with the scope tokens of before (SQLite schema 8, PostgreSQL 3): the
    migration makes every contact's tokens again, so scoped searches find what they found."""
    t, ids = spread
    scopes = [(("burgerzaken", "sociale_dienst"), "gemeente", ["bz-conf", "sd", "bz"]),
              (("omgeving",), "gemeente", ["omg-conf", "omg"])]
    tokens = [api.token("s-bo-migrate-%d" % i, "backoffice", departments=deps,
                        organisation=org) for i, (deps, org, _) in enumerate(scopes)]
    assert api.d.stop() == 0
    if DRIVER == "pgsql":
        cluster = REGISTERS.start()
        cluster.psql_run(
            "UPDATE contacts SET search = array_to_tsvector("
            " loket_words(concat_ws(' ', reference, subject, body, answer))"
            " || ARRAY[loket_scope_token('o', coalesce(organisation, '')),"
            "          CASE WHEN confidential THEN '#c1' ELSE '#c0' END]"
            " || CASE WHEN department IS NULL THEN '{}'::text[]"
            "    ELSE ARRAY[loket_scope_token('d', department)] END);"
            " UPDATE loket_schema SET version = 3", db=REGISTERS.database_of(api.d))
    else:
        con = sqlite3.connect(api.db_path)
        try:
            con.create_function("loket_fold", -1, old_fold)
            con.create_function("loket_scope", 3, old_scope)
            con.execute("INSERT INTO contacts_fts (contacts_fts) VALUES ('delete-all')")
            con.execute("INSERT INTO contacts_fts (rowid, words, scope) SELECT id,"
                        " loket_fold(reference, subject, body, answer),"
                        " loket_scope(department, organisation, confidential) FROM contacts")
            con.execute("PRAGMA user_version = 8")
            con.commit()
        finally:
            con.close()
    api.restart()
    for token, (_, _, sees) in zip(tokens, scopes):
        want = [ids[k] for k in SPREAD_ORDER if k in sees]
        assert contact_ids(api, "aanvraag spreiding %s" % t, token=token, limit=100) == want
    assert contact_ids(api, "aanvraag spreiding %s" % t, limit=100) == \
        [ids[k] for k in SPREAD_ORDER]
    # and a contact changed after it is taken out of its old place in the index
    api.ok("PATCH", "/api/v1/contacts/%d" % ids["bz"], {"department": "omgeving"})
    assert ids["bz"] not in contact_ids(api, "aanvraag spreiding %s" % t, token=tokens[0],
                                        limit=100)
    assert ids["bz"] in contact_ids(api, "aanvraag spreiding %s" % t, token=tokens[1],
                                    limit=100)
    api.ok("PATCH", "/api/v1/contacts/%d" % ids["bz"], {"department": "burgerzaken"})


def scope_token_counts(api):
    """{scope token (without PostgreSQL's "#"): how many contacts hold it}, read from the
    index itself; and the number of contacts of each department."""
    if DRIVER == "pgsql":
        db = REGISTERS.database_of(api.d)
        cluster = REGISTERS.start()
        rows = cluster.query("SELECT substr(word, 2) AS term, ndoc FROM ts_stat("
                             "'SELECT search FROM contacts') WHERE word LIKE '#%'", db=db)
        terms = {r["term"]: r["ndoc"] for r in rows}
        deps = {r["department"]: r["n"] for r in cluster.query(
            "SELECT department, count(*) AS n FROM contacts WHERE department IS NOT NULL"
            " GROUP BY department", db=db)}
        return terms, deps
    con = sqlite3.connect("file:%s?mode=ro" % api.db_path, uri=True)
    try:
        con.execute("CREATE VIRTUAL TABLE temp.scope_vocab USING fts5vocab(main, contacts_fts,"
                    " 'col')")
        terms = dict(con.execute("SELECT term, doc FROM temp.scope_vocab WHERE col = 'scope'"))
        deps = dict(con.execute("SELECT department, count(*) FROM contacts"
                                " WHERE department IS NOT NULL GROUP BY department"))
        return terms, deps
    finally:
        con.close()


def test_no_scope_token_holds_more_than_one_departments_contacts(api, spread):
    """What makes a scoped search cheap: every scope token a department-scoped query asks
    for lists at most one department's contacts (no token of nearly every contact, which
    a two-word query would have to intersect with)."""
    terms, per_department = scope_token_counts(api)
    assert "c0" not in terms, terms
    for dep, n in per_department.items():
        d = "d" + dep.encode().hex()
        mine = {k: v for k, v in terms.items() if k == d + "c0" or k.startswith(d + "o")}
        assert sum(mine.values()) == n, (dep, mine)
    everyone = sum(per_department.values())
    assert max(v for k, v in terms.items() if k.startswith("d")) < everyone, terms


@pytest.mark.sqlite_only(reason="another SQLite client writing into the register file")
def test_contact_another_client_inserted_is_indexed_with_the_next_write(api):
    """The index's insert triggers only queue the row (no loketd function needed), and the
    writer's next batch puts the queue into the index."""
    t = tag()
    con = sqlite3.connect(api.db_path, timeout=10)
    try:
        con.execute("INSERT INTO contacts (reference, channel, received_at, updated_at, subject,"
                    " department, organisation, created_by) VALUES ('1999-000002', 'phone', 0, 0,"
                    " ?, 'burgerzaken', 'gemeente', 'import')", ("Ingevoerd %s" % t,))
        con.commit()
    finally:
        con.close()
    api.create(subject="nog een", department="burgerzaken")
    found = search(api, "ingevoerd %s" % t)["contacts"]
    assert [c["reference"] for c in found] == ["1999-000002"], found


def test_a_long_body_is_stored_and_indexed_up_to_what_the_index_keeps(api):
    """A body with a word longer than any word (64 letters) and more words than the index
    keeps (10,000) is stored on both drivers (PostgreSQL refuses lexemes over 2047 bytes and
    tsvectors over 1 MB): the long word is no word, and only the first 10,000 words are found,
    the same on either driver."""
    t = tag()
    early, late = "v" + t, "n" + t
    words = ["w%d" % i for i in range(10050)]
    words[10] = early
    words[10040] = late
    body = "x" * 64512 + " " + " ".join(words) + " " + "y" * 65
    c = api.create(subject="Lange tekst %s" % t, body=body)
    assert contact_ids(api, early) == [c["id"]]
    assert contact_ids(api, late) == []
    assert contact_ids(api, "lange tekst %s" % t) == [c["id"]]
