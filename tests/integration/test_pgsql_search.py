"""The pgsql driver's search index folds text exactly as core/lib/fold.c does: its SQL
loket_fold() (plugins/store_pgsql/pg_schema.c) holds the same table, checked here code point
by code point against the C table, so that both drivers index the same words."""
import os
import re

import pytest

from api_fixtures import ORG_CONF, Api, finish_api
from conftest import REGISTERS, Loketd

pytestmark = pytest.mark.pgsql_only("the pgsql driver's register (LOKET_TEST_DRIVER=pgsql)")


def c_fold_table():
    """U+00C0..U+017F -> what fold.c's fold_latin table says ("" for a separator)."""
    src = open(os.path.join(os.environ["LOKET_SRCDIR"], "core", "lib", "fold.c"),
               encoding="utf-8").read()
    body = src[src.index("fold_latin[0x180 - 0xC0] = {"):]
    body = body[:body.index("};")]
    vals = re.findall(r'"([a-z]*)"', body)
    assert len(vals) == 0x180 - 0xC0
    return {0xC0 + i: v for i, v in enumerate(vals)}


def c_fold_of(cp, table):
    """fold_text("a" U+cp "b"), by fold.c's rules."""
    ch = chr(cp)
    if "A" <= ch <= "Z" or "a" <= ch <= "z" or "0" <= ch <= "9":
        return "a" + ch.lower() + "b"
    if 0x300 <= cp <= 0x36F:
        return "ab"
    if table.get(cp):
        return "a" + table[cp] + "b"
    return "a b"


@pytest.fixture(scope="module")
def register(tmp_path_factory):
    d = Loketd(tmp_path_factory.mktemp("pgfold"), extra=ORG_CONF)
    d.start()
    api = Api(d)
    yield api, REGISTERS.start(), REGISTERS.database_of(d)
    finish_api(api)


def test_sql_fold_is_the_c_fold_for_every_code_point(register):
    api, cluster, db = register
    table = c_fold_table()
    cps = list(range(0x20, 0x180)) + list(range(0x300, 0x370)) + [0x391, 0x416, 0x20AC, 0x1F600]
    rows = cluster.query("SELECT cp, loket_fold('a' || chr(cp) || 'b') AS f FROM"
                         " unnest(ARRAY[%s]) cp" % ",".join(map(str, cps)), db=db)
    got = {r["cp"]: r["f"] for r in rows}
    wrong = {"U+%04X" % cp: (got[cp], c_fold_of(cp, table)) for cp in cps
             if got[cp] != c_fold_of(cp, table)}
    assert wrong == {}, wrong


def test_rows_another_node_wrote_are_indexed(register):
    """A contact inserted straight into the register (as another node would) is found."""
    api, cluster, db = register
    cluster.psql_run(
        "INSERT INTO contacts (reference, channel, received_at, updated_at, subject, body,"
        " department, organisation, created_by) VALUES ('1999-000001', 'phone', now(), now(),"
        " 'Ándere Nöde', 'geschreven', 'burgerzaken', 'gemeente', 'node-b')", db=db)
    r = api.call("GET", "/api/v1/search?q=andere+node", token=api.agent)
    assert r.status == 200, r
    assert [c["reference"] for c in r.json["contacts"]] == ["1999-000001"], r
