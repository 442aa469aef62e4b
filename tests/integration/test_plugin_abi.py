"""The plugin ABI as a channel plugin meets it, through the example plugin (plugins/hello):
who calls a route, repeated config sub-sections, and a build against the installed header
alone (docs/plugins.md)."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess

from api_fixtures import ORG_CONF
from conftest import BUILDDIR, SLOW, SRCDIR, line_of, wait_for


def whoami(d, token=None):
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    status, headers, body = d.request("GET", "/hello/whoami", headers=headers)
    assert status == 200, body
    assert headers.get("Content-Type") == "application/json"
    return json.loads(body)["caller"]


def greetings(d, token):
    status, _, body = d.request("GET", "/hello/greetings",
                                headers={"Authorization": "Bearer " + token})
    assert status == 200, body
    return json.loads(body)["greetings"]


GREETINGS = """\
[plugin.hello.greeting.morning]
text = Goedemorgen
[plugin.hello.greeting.evening]
text = Good "evening"
language = en
[plugin.hello.greeting.nacht-2]
text = Goeienacht
"""


# who calls -----------------------------------------------------------------------------


def test_whoami_names_a_backoffice_token_with_its_departments_and_organisation(loketd):
    d = loketd(plugins=["hello"], extra=ORG_CONF)
    token = d.add_token("balie-burgerzaken", "backoffice", "--department", "burgerzaken",
                        "--department", "omgeving", "--organisation", "gemeente")
    assert whoami(d, token) == {"name": "balie-burgerzaken", "kind": "token",
                                "role": "backoffice",
                                "departments": ["burgerzaken", "omgeving"],
                                "organisation": "gemeente"}


def test_whoami_names_an_agent_token_with_its_organisation(loketd):
    d = loketd(plugins=["hello"], extra=ORG_CONF)
    token = d.add_token("onthaal-ocmw", "agent", "--organisation", "ocmw")
    # An agent is limited to no department: it sees them all.
    assert whoami(d, token) == {"name": "onthaal-ocmw", "kind": "token", "role": "agent",
                                "departments": [], "organisation": "ocmw"}


def test_whoami_names_an_admin_token_without_organisation(loketd):
    d = loketd(plugins=["hello"], extra=ORG_CONF)
    token = d.add_token("beheer", "admin")
    assert whoami(d, token) == {"name": "beheer", "kind": "token", "role": "admin",
                                "departments": [], "organisation": None}


def test_whoami_without_a_token_answers_no_caller(loketd):
    d = loketd(plugins=["hello"], extra=ORG_CONF)
    assert whoami(d) is None
    # A public route never refuses for credentials: an unknown or revoked token is no caller.
    assert whoami(d, "lkt_" + "x" * 43) is None
    token = d.add_token("weg", "agent")
    assert whoami(d, token)["name"] == "weg"
    assert d.ctl("token", "revoke", "weg").returncode == 0
    assert whoami(d, token) is None


def test_a_token_route_tells_the_handler_its_caller_and_refuses_without_one(loketd):
    d = loketd(plugins=["hello"], extra=ORG_CONF + GREETINGS)
    status, _, body = d.request("GET", "/hello/greetings")
    assert status == 401, body
    token = d.add_token("intake-web", "intake")
    assert [g["id"] for g in greetings(d, token)] == ["morning", "evening", "nacht-2"]


# blobs ------------------------------------------------------------------------------------


def test_a_plugin_reads_back_through_the_register_the_blob_it_kept(loketd):
    """ABI 1.6: blob_get hands a plugin the bytes of a stored blob by their SHA-256, from
    wherever the register keeps them; a name it does not keep (or no name at all) is an
    error with a sentence, never a file outside the blobs."""
    d = loketd(plugins=["hello"], extra=ORG_CONF)
    token = d.add_token("beheer", "admin")
    auth = {"Authorization": "Bearer " + token}
    data = bytes(range(256)) * 40 + b"\x00einde"
    status, _, body = d.request("POST", "/hello/blob", body=data,
                                headers=dict(auth, **{"Content-Type": "application/pdf"}))
    assert status == 201, body
    sha = json.loads(body)["sha256"]
    assert sha == hashlib.sha256(data).hexdigest()
    status, headers, body = d.request("GET", "/hello/blob/" + sha, headers=auth)
    assert status == 200, body
    assert body == data
    assert headers.get("Content-Type") == "application/octet-stream"
    for name in ("0" * 64, sha.upper(), "loket.db", "..", sha[:63]):
        status, headers, body = d.request("GET", "/hello/blob/" + name, headers=auth)
        assert status == 404, (name, body)
        assert headers.get("Content-Type") == "application/problem+json"
        assert b"keeps no file with that SHA-256" in body, (name, body)
    # A name that tries to leave the blobs never reaches a file: decoded, its dot segments
    # are refused before any route.
    status, _, body = d.request("GET", "/hello/blob/..%2f..%2floket.db", headers=auth)
    assert status == 400 and b"'.' or '..' segments" in body and b"SQLite" not in body, body
    # Blobs may hold personal data: the example routes are for an admin only.
    status, _, _ = d.request("GET", "/hello/blob/" + sha)
    assert status == 401
    agent = d.add_token("onthaal", "agent")
    status, _, _ = d.request("GET", "/hello/blob/" + sha,
                             headers={"Authorization": "Bearer " + agent})
    assert status == 403


# leases -------------------------------------------------------------------------------------


def lease(d, auth, name, ttl=None, release=False):
    q = []
    if ttl is not None:
        q.append("ttl=%d" % ttl)
    if release:
        q.append("release=1")
    path = "/hello/lease/" + name + ("?" + "&".join(q) if q else "")
    status, headers, body = d.request("POST", path, headers=auth)
    return status, headers, body


def held_ms(d, auth, name, **kw):
    status, _, body = lease(d, auth, name, **kw)
    assert status == 200, body
    return json.loads(body)["held_ms"]


def test_a_plugin_holds_renews_and_gives_up_a_lease_under_its_own_name(loketd):
    """ABI 1.7: lease takes a named lease for this node and says for how long ([storage]
    lease, 30 s, unless the plugin asks for another length); asking again renews it, release
    gives it up; the log names the lease with the plugin's name before it, and the node."""
    d = loketd(plugins=["hello"], extra=ORG_CONF)
    auth = {"Authorization": "Bearer " + d.add_token("beheer", "admin")}
    assert held_ms(d, auth, "printer") == 30000
    assert held_ms(d, auth, "printer", ttl=4500) == 4500
    m = d.wait_log(r"info store lease taken name=hello:printer node=(\S+):%d$" % d.proc.pid)
    assert m.group(1), m.group(0)
    # Renewing is no new taking: one line for the lease, however often it is renewed.
    assert d.log().count("lease taken name=hello:printer ") == 1
    assert held_ms(d, auth, "printer", release=True) == 0
    d.wait_log(r"info store lease released name=hello:printer node=\S+:%d$" % d.proc.pid)
    assert held_ms(d, auth, "printer", ttl=2000) == 2000
    assert d.log().count("lease taken name=hello:printer ") == 2


def test_a_lease_name_that_could_fake_a_log_line_is_refused(loketd):
    d = loketd(plugins=["hello"], extra=ORG_CONF)
    auth = {"Authorization": "Bearer " + d.add_token("beheer", "admin")}
    for name in ("a%20b", "a%22b", "a%5Cb", "x" * 129):
        status, headers, body = lease(d, auth, name)
        assert status == 422, (name, body)
        assert headers.get("Content-Type") == "application/problem+json"
        assert b"lease refused: a name of at most 128 bytes" in body, body
    status, _, body = lease(d, auth, "printer", ttl=2 ** 31)
    assert status == 422 and b"a ttl of at most 2147483647 ms" in body, body
    assert held_ms(d, auth, "x" * 128) == 30000
    # Leases steer which node does shared work: the route is for an admin only.
    status, _, _ = lease(d, {}, "printer")
    assert status == 401


# sub-sections ---------------------------------------------------------------------------


def test_sub_sections_are_listed_in_file_order_with_defaults(loketd):
    d = loketd(plugins=["hello"], plugin_conf={"hello": {"greeting": "Dag"}},
               extra=ORG_CONF + GREETINGS)
    token = d.add_token("beheer", "admin")
    assert greetings(d, token) == [
        {"id": "morning", "text": "Goedemorgen", "language": "nl"},
        {"id": "evening", "text": 'Good "evening"', "language": "en"},
        {"id": "nacht-2", "text": "Goeienacht", "language": "nl"},
    ]
    # The main section is read as before, next to its sub-sections.
    status, _, body = d.request("GET", "/hello/Jan")
    assert json.loads(body)["greeting"] == "Dag, Jan"


def test_no_sub_sections_lists_none(loketd):
    d = loketd(plugins=["hello"], extra=ORG_CONF)
    assert greetings(d, d.add_token("beheer", "admin")) == []


def test_unknown_key_in_a_sub_section_stops_the_start_with_file_line(loketd):
    extra = GREETINGS + "colour = blue\n"
    d = loketd(plugins=["hello"], extra=extra, start=False)
    want = "%s:%d: unknown key 'colour' in [plugin.hello.greeting.nacht-2]" % (
        d.conf_path, line_of(d.config_text, "colour = blue"))
    r = d.check()
    assert r.returncode == 2 and want in r.stderr, r.stderr
    assert d.start_fails() == 2
    assert want in d.log(), d.log()


def test_missing_required_key_in_a_sub_section_names_its_header_line(loketd):
    extra = "[plugin.hello.greeting.leeg]\nlanguage = fr\n"
    d = loketd(plugins=["hello"], extra=extra, start=False)
    r = d.check()
    assert r.returncode == 2
    assert "%s:%d: [plugin.hello.greeting.leeg] text is required (the greeting itself)" % (
        d.conf_path, line_of(d.config_text, "[plugin.hello.greeting.leeg]")) in r.stderr, \
        r.stderr


def test_unknown_sub_section_kind_stops_loketd_t_naming_the_kinds(loketd):
    d = loketd(plugins=["hello"], extra="[plugin.hello.desk.1]\ntext = x\n", start=False)
    r = d.check()
    assert r.returncode == 2
    assert "%s:%d: unknown section [plugin.hello.desk.1]: plugin hello has sub-sections of " \
        "kind greeting" % (d.conf_path, line_of(d.config_text, "[plugin.hello.desk.1]")) \
        in r.stderr, r.stderr


def test_sub_section_without_an_id_stops_loketd_t(loketd):
    d = loketd(plugins=["hello"], extra="[plugin.hello.greeting]\ntext = x\n", start=False)
    r = d.check()
    assert r.returncode == 2
    assert "%s:%d: section [plugin.hello.greeting]: expected [plugin.hello.greeting.ID]" % (
        d.conf_path, line_of(d.config_text, "[plugin.hello.greeting]")) in r.stderr, r.stderr


def test_sub_section_of_a_plugin_not_listed_stops_loketd_t(loketd):
    d = loketd(plugins=["hello"], extra="[plugin.balie.desk.1]\nname = x\n", start=False)
    r = d.check()
    assert r.returncode == 2
    assert "section [plugin.balie.desk.1] is for plugin 'balie', which is not in [loketd] " \
        "plugins" in r.stderr, r.stderr


def test_reload_picks_up_changed_added_and_removed_sub_sections(loketd):
    d = loketd(plugins=["hello"], extra=ORG_CONF + GREETINGS)
    token = d.add_token("beheer", "admin")
    assert len(greetings(d, token)) == 3
    changed = ORG_CONF + ("[plugin.hello.greeting.nacht-2]\ntext = Slaapwel\n"
                          "[plugin.hello.greeting.middag]\ntext = Smakelijk\nlanguage = nl-BE\n")
    d.reload_config(d.config(extra=changed))
    mark = len(d.log())
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"^\S+Z info loketd reloaded ", after=mark)
    assert greetings(d, token) == [
        {"id": "nacht-2", "text": "Slaapwel", "language": "nl"},
        {"id": "middag", "text": "Smakelijk", "language": "nl-BE"},
    ]


def test_reload_with_a_bad_sub_section_keeps_the_running_ones(loketd):
    d = loketd(plugins=["hello"], extra=ORG_CONF + GREETINGS)
    token = d.add_token("beheer", "admin")
    before = greetings(d, token)
    bad = d.config(extra=ORG_CONF + GREETINGS + "tekst = typo\n")
    d.reload_config(bad)
    mark = len(d.log())
    d.send_signal(signal.SIGHUP)
    m = d.wait_log(r"^\S+Z error loketd reload failed.*$", after=mark)
    assert "%s:%d: unknown key 'tekst' in [plugin.hello.greeting.nacht-2]" % (
        d.conf_path, line_of(bad, "tekst = typo")) in m.group(0)
    assert greetings(d, token) == before


# the installed header --------------------------------------------------------------------


def install_headers(tmp_path):
    """`make install` of the public headers and loket.pc into a DESTDIR: (cflags, env) that
    see those alone."""
    destdir = tmp_path / "destdir"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run([os.environ.get("MAKE", "make"), "-C", BUILDDIR, "DESTDIR=%s" % destdir,
                        "install-pkgincludeHEADERS", "install-pkgconfigDATA"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    pcs = [os.path.join(root, f) for root, _, files in os.walk(destdir)
           for f in files if f == "loket.pc"]
    headers = [os.path.join(root, f) for root, _, files in os.walk(destdir) for f in files]
    assert len(pcs) == 1 and sorted(os.path.basename(h) for h in headers) == \
        ["loket.pc", "plugin.h", "store.h"], headers

    env["PKG_CONFIG_PATH"] = os.path.dirname(pcs[0])
    env["PKG_CONFIG_LIBDIR"] = os.path.dirname(pcs[0])
    env["PKG_CONFIG_SYSROOT_DIR"] = str(destdir)
    r = subprocess.run(["pkg-config", "--cflags", "loket"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    cflags = r.stdout.split()
    assert cflags and all(f.startswith("-I" + str(destdir)) for f in cflags), cflags
    return cflags, env


def test_hello_builds_against_the_installed_header_alone_and_loads(loketd, tmp_path):
    """hello.c compiled with only what `make install` puts in includedir and pkgconfig: a
    plugin that reached into core/ would not compile here."""
    cflags, env = install_headers(tmp_path)

    # A copy away from the source tree: no quoted include can find a neighbour.
    src = tmp_path / "hello.c"
    shutil.copyfile(os.path.join(SRCDIR, "plugins", "hello", "hello.c"), src)
    so = tmp_path / "hello.so"
    r = subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Wextra", "-Werror",
                        "-fPIC", "-shared", "-fvisibility=hidden"] + cflags +
                       ["-o", str(so), str(src)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr

    d = loketd(plugins=["hello"], plugin_conf={"hello": {"greeting": "Dag"}},
               extra=GREETINGS, start=False)
    dst = os.path.join(d.plugin_dir, "hello.so")
    shutil.copyfile(so, dst)
    os.chmod(dst, 0o755)
    r = d.check()
    assert r.returncode == 0, r.stderr
    d.start()
    status, _, body = d.request("GET", "/hello/Jan")
    assert status == 200 and json.loads(body)["greeting"] == "Dag, Jan", body
    assert whoami(d) is None


# a storage driver built outside the tree -----------------------------------------------


def build_store_driver(tmp_path, name="memo", defines=()):
    """tests/plugins/store_memo.c, copied away from the tree and compiled with the installed
    loket/store.h, jansson and libevent alone, as plugin_dir/store_NAME.so would be."""
    cflags, env = install_headers(tmp_path)
    r = subprocess.run(["pkg-config", "--cflags", "jansson", "libevent"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    src = tmp_path / "store_memo.c"
    shutil.copyfile(os.path.join(SRCDIR, "tests", "plugins", "store_memo.c"), src)
    so = tmp_path / ("store_%s.so" % name)
    r = subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Wextra", "-Werror",
                        "-fPIC", "-shared"] + cflags + r.stdout.split() + list(defines) +
                       ["-o", str(so), str(src)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return so


def install_store_driver(d, so, name="memo"):
    dst = os.path.join(d.plugin_dir, "store_%s.so" % name)
    shutil.copyfile(so, dst)
    os.chmod(dst, 0o755)
    return dst


def test_storage_driver_built_against_the_installed_header_refuses_with_its_own_sentence(
        loketd, tmp_path):
    """[storage] driver = memo loads plugin_dir/store_memo.so (not listed in plugins), hands
    it [storage] through the host table, and a refusing open stops loketd with the
    driver's own sentence and a nonzero exit."""
    so = build_store_driver(tmp_path)
    d = loketd(start=False, extra="[storage]\ndriver = memo\nconninfo = refuse\n"
                                  "pool = 7\nlease = 45s\n")
    install_store_driver(d, so)
    r = d.check()
    assert r.returncode == 0, r.stderr
    rc = d.start_fails()
    assert rc != 0
    log = d.log()
    assert "memo opening pool=7 lease_ms=45000 readers=4" in log, log
    assert "memo: the test asked this register to refuse (conninfo = refuse)" in log, log


def test_storage_driver_answers_healthz_and_requests_through_the_host_table(loketd, tmp_path):
    """An open driver's health sentence is what /healthz shows, and its refusals reach the
    API as 503 with its sentence, through the host table's fail and complete."""
    so = build_store_driver(tmp_path)
    d = loketd(start=False, extra="[storage]\ndriver = memo\nconninfo = keep\n")
    install_store_driver(d, so)
    d.spawn()

    def healthz():
        if d.proc.poll() is not None:
            return "exited"
        try:
            return d.request("GET", "/healthz", timeout=1)
        except OSError:
            return None

    got = wait_for(healthz, 10 * SLOW, interval=0.05)
    assert got not in (None, "exited"), "loketd with driver memo: %s; log:\n%s" % (got, d.log())
    status, _, body = got
    assert status == 503, (status, body)
    assert b"memo keeps nothing: the test driver cannot commit" in body, body


def test_missing_storage_driver_names_the_file_it_looked_for(loketd):
    d = loketd(start=False, extra="[storage]\ndriver = nosuch\n")
    want = os.path.join(os.path.realpath(d.plugin_dir), "store_nosuch.so")
    r = d.check()
    assert r.returncode == 2, r.stderr
    assert "storage driver nosuch: no file %s" % want in r.stderr, r.stderr
    assert "configuration OK" not in r.stdout
    rc = d.start_fails()
    assert rc != 0
    assert "storage driver nosuch: no file %s" % want in d.log(), d.log()


def test_storage_driver_of_another_abi_major_is_refused_naming_the_file(loketd, tmp_path):
    so = build_store_driver(tmp_path, defines=["-DMEMO_WRONG_MAJOR"])
    d = loketd(start=False, extra="[storage]\ndriver = memo\nconninfo = keep\n")
    path = install_store_driver(d, so)
    r = d.check()
    assert r.returncode == 2, r.stderr
    header = open(os.path.join(SRCDIR, "include", "loket", "store.h"), encoding="utf-8").read()
    minor = re.search(r"#define LOKET_STORE_ABI_MINOR (\d+)", header).group(1)
    # The driver is built with the core's minor version: a major version apart, minor kept.
    assert "storage driver memo: %s was built for storage ABI 2.%s, but this loketd speaks " \
        "1.%s; rebuild the driver" % (os.path.realpath(path), minor, minor) in r.stderr, r.stderr
