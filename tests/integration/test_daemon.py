"""loketd as a user meets it: start, config checks, plugins, HTTP limits, metrics, reload,
shutdown and loketctl."""

import http.client
import io
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import LOG_LINE, LOKETD, SLOW, SRCDIR, VALGRIND, line_of, package_version, wait_for
from test_rules_support import example_units

VERSION = package_version()
ABI = "1.8"


def problem(status, headers, body, expected_status):
    """Asserts an application/problem+json answer and returns the decoded document."""
    assert status == expected_status, (status, body)
    assert headers.get("Content-Type", "").split(";")[0].strip() == "application/problem+json", \
        headers.get("Content-Type")
    doc = json.loads(body)
    for key in ("type", "title", "status", "detail"):
        assert key in doc, doc
    assert doc["status"] == expected_status
    assert doc["title"] and doc["detail"]
    return doc


def read_response(sock, limit=65536):
    """Reads from a raw socket until EOF (or limit bytes); returns the bytes."""
    data = b""
    while len(data) < limit:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def parse_raw_response(data):
    """(status, headers, body) of one raw HTTP/1.x answer; headers are case-insensitive."""
    assert data, "the server closed the connection without an answer"
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, _, rest = head.partition(b"\r\n")
    status = int(status_line.split()[1])
    headers = http.client.parse_headers(io.BytesIO(rest + b"\r\n\r\n"))
    return status, headers, body


def read_one_response(reader):
    """Reads exactly one Content-Length framed HTTP answer from reader (a socket's
    makefile("rb"), kept across calls so pipelined answers are not lost)."""
    status_line = reader.readline()
    assert status_line, "connection closed before an answer"
    status = int(status_line.split()[1])
    headers = http.client.parse_headers(reader)
    body = reader.read(int(headers.get("Content-Length", "0")))
    return status, headers, body


def get_metrics(d):
    """GET /metrics with an admin token (created once per daemon); returns the response."""
    token = getattr(d, "_metrics_token", None)
    if token is None:
        token = d._metrics_token = d.add_token("prometheus", "admin")
    return d.request("GET", "/metrics", headers={"Authorization": "Bearer " + token})


def metrics_text(d):
    status, _, body = get_metrics(d)
    assert status == 200, body
    return body.decode()


def metric(text, name_and_labels):
    m = re.search(r"^%s (\S+)$" % re.escape(name_and_labels), text, re.M)
    return float(m.group(1)) if m else None


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def error_lines(log):
    return [l for l in log.splitlines() if re.match(r"^\S+Z error ", l)]


# 1. start ------------------------------------------------------------------------------


def test_start_healthz_and_log_format(loketd):
    d = loketd()
    status, headers, body = d.request("GET", "/healthz")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["status"] == "ok"
    assert doc["version"] == VERSION

    m = d.wait_log(r"^\S+Z info loketd ready .*$")
    assert "listen=127.0.0.1:%d" % d.port in m.group(0)
    assert "pid=%d" % d.proc.pid in m.group(0)
    # valgrind's own lines ("==PID== ...") are not loketd's.
    lines = [l for l in d.log().splitlines() if l and not (VALGRIND and l.startswith("=="))]
    assert lines
    for line in lines:
        assert LOG_LINE.match(line), "log line not in the agreed format: %r" % line


def test_head_healthz_has_no_body(loketd):
    d = loketd()
    status, headers, body = d.request("HEAD", "/healthz")
    assert status == 200
    assert body == b""


# 2. command line and config checks ----------------------------------------------------


def test_version_flag():
    r = subprocess.run([LOKETD, "-V"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    assert re.search(r"^loketd %s \(plugin ABI %s\)$" % (re.escape(VERSION), ABI), r.stdout, re.M), \
        r.stdout


def test_usage_without_config():
    r = subprocess.run([LOKETD], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "usage: loketd -c FILE" in r.stderr


def test_check_good_config(loketd):
    d = loketd(plugins=["hello"], plugin_conf={"hello": {"greeting": "Dag"}}, start=False)
    r = d.check()
    assert r.returncode == 0, r.stderr
    assert "%s: configuration OK" % d.conf_path in r.stdout
    assert not os.path.exists(d.control_socket), "-t must not open the control socket"


def test_check_example_config(loketd):
    """The shipped example, pointed at tmp paths, passes -t (it is what admins copy)."""
    d = loketd(plugins=["chan_web"], start=False)  # the example loads the e-loket
    with open(os.path.join(SRCDIR, "etc", "loket.conf.example")) as f:
        text = f.read()
    text = re.sub(r"^listen = .*$", "listen = 127.0.0.1:%d" % d.port, text, flags=re.M)
    text = re.sub(r"^data_dir = .*$", "data_dir = " + d.data_dir, text, flags=re.M)
    text = re.sub(r"^plugin_dir = .*$", "plugin_dir = " + d.plugin_dir, text, flags=re.M)
    d.write_config(text)
    r = d.check()
    assert r.returncode == 0, r.stderr


# Each case: (id, text appended to a good config, needle on the offending line, words the
# reason must contain). The reported line is the line holding the needle.
BAD_CONFIGS = [
    ("unknown_section", "[nope]\n; a comment between the header and its key\nfoo = 1\n",
     "[nope]", ["unknown section [nope]"]),
    ("unknown_key", "[http]\nmax_header_size = 8k\ncolour = blue\n",
     "colour = blue", ["unknown key 'colour'", "[http]"]),
    ("bad_duration", "[http]\ntimeout = soon\n",
     "timeout = soon", ["timeout", "expected a duration", "'soon'"]),
    ("bad_size", "[http]\nmax_body_size = lots\n",
     "max_body_size = lots", ["max_body_size", "expected a size", "'lots'"]),
    ("bad_count", "[http]\nmax_connections = -3\n",
     "max_connections = -3", ["max_connections", "expected a positive integer"]),
    ("bad_choice", "[storage]\ndurability = maybe\n",
     "durability = maybe", ["durability", "full relaxed", "'maybe'"]),
    ("bad_driver_name", "[storage]\ndriver = ../mysql\n",
     "driver = ../mysql", ["driver", "store_NAME.so", "'../mysql'"]),
    ("line_without_equals", "[http]\ntimeout = 5s\nthis line has no equals sign\n",
     "this line has no equals sign", ["expected '[section]' or 'key = value'"]),
    ("plugin_section_not_loaded", "[plugin.chan_fax]\nnumber = 1\n",
     "[plugin.chan_fax]", ["[plugin.chan_fax]", "'chan_fax'", "not in [loketd] plugins"]),
    ("key_twice", "[http]\ntimeout = 5s\nmax_body_size = 1m\ntimeout = 6s\n",
     "timeout = 6s", ["'timeout'", "set twice", "first on line"]),
    ("overlong_line", "[storage]\nconninfo = host=" + "h" * 250 + "\n",
     "conninfo = host=", ["line too long"]),
    ("department_unknown_organisation",
     "[organisation.gemeente]\nname = Gemeente\n[department.burgerzaken]\n"
     "name = Burgerzaken\norganisation = gemeent\n",
     "organisation = gemeent", ["organisation", "'gemeent'", "[organisation.NAME]"]),
]


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=lambda c: c[0])
def test_check_bad_config(loketd, case):
    _, extra, needle, words = case
    d = loketd(start=False)
    text = d.config() + extra
    d.write_config(text)
    lineno = line_of(text, needle)
    r = d.check()
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "%s:%d: " % (d.conf_path, lineno) in r.stderr, \
        "expected %s:%d: in:\n%s\n--- config ---\n%s" % (d.conf_path, lineno, r.stderr, text)
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert "configuration OK" not in r.stdout


@pytest.mark.parametrize("key,value,words", [
    ("listen", "nope", ["listen", "expected host:port", "'nope'"]),
    ("listen", "127.0.0.1:99999", ["listen", "expected host:port"]),
    ("log_level", "loud", ["log_level", "debug, info, warn, error", "'loud'"]),
    ("data_dir", "relative/dir", ["data_dir", "absolute path"]),
    ("plugins", "hello Hello!", ["plugins", "'Hello!'"]),
    ("plugins", "hello hello", ["plugins", "'hello' is listed twice"]),
])
def test_check_bad_loketd_value(loketd, key, value, words):
    d = loketd(start=False)
    text = d.config(loketd_conf={key: value})
    d.write_config(text)
    r = d.check()
    assert r.returncode == 2, r.stderr
    assert "%s:%d: " % (d.conf_path, line_of(text, "%s = %s" % (key, value))) in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_check_config_with_crlf_line_endings(loketd):
    """A config edited on Windows (CRLF) reads the same as one with LF."""
    d = loketd(plugins=["hello"], plugin_conf={"hello": {"greeting": "Dag"}}, start=False)
    with open(d.conf_path, "w", newline="\r\n") as f:
        f.write(d.config_text)
    r = d.check()
    assert r.returncode == 0, r.stderr
    d.start()
    assert greeting(d) == "Dag, Jan"


def test_check_empty_unknown_section_is_refused(loketd):
    """A misspelt section whose keys are all commented out must not pass silently."""
    d = loketd(start=False)
    text = d.config() + "[htpp]\n;timeout = 1s\n"
    d.write_config(text)
    r = d.check()
    assert r.returncode == 2, "an unknown empty section [htpp] was accepted: %r" % r.stdout
    assert "%s:%d: " % (d.conf_path, line_of(text, "[htpp]")) in r.stderr, r.stderr


def test_check_missing_config_file(tmp_path):
    path = str(tmp_path / "nothere.conf")
    r = subprocess.run([LOKETD, "-c", path, "-t"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "%s: cannot read: No such file or directory" % path in r.stderr, r.stderr


def test_check_unreadable_config_file(tmp_path):
    path = tmp_path / "secret.conf"
    path.write_text("[loketd]\ndata_dir = /tmp\n")
    path.chmod(0)
    kw = {}
    if os.geteuid() == 0:
        # root reads anything; the check runs as nobody, the way an admin meets this.
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("running as root and there is no user 'nobody'")
        kw["user"] = "nobody"
    r = subprocess.run([LOKETD, "-c", str(path), "-t"], capture_output=True, text=True,
                       timeout=10, **kw)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "%s: cannot read: Permission denied" % path in r.stderr, r.stderr


def test_check_config_path_is_a_directory(tmp_path):
    """`-c DIR` is a typo an admin makes; the answer must say the file cannot be read."""
    r = subprocess.run([LOKETD, "-c", str(tmp_path), "-t"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2
    assert "%s: cannot read" % tmp_path in r.stderr, r.stderr


def test_check_missing_data_dir(loketd):
    d = loketd(start=False)
    text = re.sub(r"^data_dir = .*\n", "", d.config(), flags=re.M)
    d.write_config(text)
    r = d.check()
    assert r.returncode == 2
    assert "[loketd] data_dir is required" in r.stderr, r.stderr


def test_bad_config_stops_the_start(loketd):
    d = loketd(start=False)
    text = d.config(http={"timeout": "soon"})
    d.write_config(text)
    rc = d.start_fails()
    assert rc == 2
    assert "%s:%d: timeout: expected a duration" % (d.conf_path, line_of(text, "timeout = soon")) \
        in d.log()


# 3. plugins ----------------------------------------------------------------------------


def test_hello_plugin_default_greeting(loketd):
    d = loketd(plugins=["hello"])
    status, headers, body = d.request("GET", "/hello/Jan")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["greeting"] == "Hallo, Jan"
    assert isinstance(doc["ticks"], int)
    assert re.search(r"^\S+Z info plugin loaded name=hello version=1\.0 abi=%s$" % re.escape(ABI),
                     d.log(), re.M)


def test_hello_plugin_greeting_from_config(loketd):
    d = loketd(plugins=["hello"], plugin_conf={"hello": {"greeting": "Dag"}})
    status, _, body = d.request("GET", "/hello/Jan")
    assert status == 200
    assert json.loads(body)["greeting"] == "Dag, Jan"
    assert re.search(r"^\S+Z info hello ready greeting=Dag$", d.log(), re.M)


def test_hello_plugin_refuses_non_letters(loketd):
    d = loketd(plugins=["hello"])
    problem(*d.request("GET", "/hello/J%22an"), 400)


BROKEN = {
    # name: (plugins to load, words the one error line must contain)
    "bad_major": (["bad_major"], ["plugin bad_major", "built for plugin ABI 2.0", "ABI " + ABI]),
    "newer_minor": (["newer_minor"],
                    ["plugin newer_minor", "built for plugin ABI %s.%d" % (
                        ABI.split(".")[0], int(ABI.split(".")[1]) + 1), "ABI " + ABI]),
    "no_symbol": (["no_symbol"], ["plugin no_symbol", "no symbol 'loket_plugin'"]),
    "dup_name": (["hello", "dup_name"],
                 ["plugin dup_name", "declares the name 'hello'", "already taken by plugin hello"]),
    "load_fails": (["load_fails"],
                   ["plugin load_fails", "load failed", "the variant was told to fail"]),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_plugin_stops_the_start(loketd, name):
    plugins, words = BROKEN[name]
    d = loketd(plugins=plugins, start=False)
    rc = d.start_fails()
    assert rc == 2, d.log()
    log = d.log()
    errors = error_lines(log)
    assert len(errors) == 1, "expected one error line, got:\n" + log
    for w in words:
        assert w in errors[0], (w, errors[0])
    naming = [l for l in log.splitlines() if name in l]
    assert naming == errors, "the plugin should be named on one line only:\n" + log
    assert not re.search(r"^\S+Z info loketd ready ", log, re.M), log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", d.port), timeout=1).close()


@pytest.mark.parametrize("name", ["bad_major", "newer_minor", "no_symbol", "dup_name"])
def test_broken_plugin_fails_the_check(loketd, name):
    plugins, words = BROKEN[name]
    d = loketd(plugins=plugins, start=False)
    r = d.check()
    assert r.returncode == 2, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_optional_plugin_is_skipped(loketd, name):
    plugins, words = BROKEN[name]
    if "hello" not in plugins:
        plugins = ["hello"] + plugins
    d = loketd(plugins=plugins, plugin_conf={name: {"optional": "yes"}})
    warnings = [l for l in d.log().splitlines()
                if re.match(r"^\S+Z warn plugin skipping optional plugin", l)]
    assert len(warnings) == 1, d.log()
    for w in words:
        assert w in warnings[0], (w, warnings[0])
    assert not error_lines(d.log()), d.log()
    # The good plugin still works, and the skipped one is not listed as loaded.
    status, _, body = d.request("GET", "/hello/Jan")
    assert status == 200 and json.loads(body)["greeting"] == "Hallo, Jan"
    r = d.ctl("stats")
    assert r.returncode == 0, r.stderr
    listed = re.findall(r"^  - (\S+)$", r.stdout, re.M)
    assert listed == ["hello"], r.stdout


def test_optional_needs_yes_or_no(loketd):
    d = loketd(plugins=["hello"], plugin_conf={"hello": {"optional": "perhaps"}}, start=False)
    r = d.check()
    assert r.returncode == 2
    assert "%s:%d: optional: expected yes or no, got 'perhaps'" % (
        d.conf_path, line_of(d.config_text, "optional = perhaps")) in r.stderr, r.stderr


def test_world_writable_plugin_dir_is_refused(loketd):
    d = loketd(plugins=["hello"], start=False)
    os.chmod(d.plugin_dir, 0o777)
    rc = d.start_fails()
    assert rc == 2
    errors = error_lines(d.log())
    assert len(errors) == 1, d.log()
    assert "plugin hello" in errors[0]
    assert d.plugin_dir in errors[0]
    assert "writable by others" in errors[0]


def test_world_writable_plugin_file_is_refused(loketd):
    d = loketd(plugins=["hello"], start=False)
    so = os.path.join(d.plugin_dir, "hello.so")
    os.chmod(so, 0o666)
    rc = d.start_fails()
    assert rc == 2
    errors = error_lines(d.log())
    assert len(errors) == 1, d.log()
    assert so in errors[0]
    assert "writable by others" in errors[0]
    assert "0666" in errors[0]


def test_unknown_key_in_plugin_section(loketd):
    d = loketd(plugins=["hello"], plugin_conf={"hello": {"greeting": "Dag", "colour": "blue"}},
               start=False)
    rc = d.start_fails()
    assert rc == 2
    want = "%s:%d: unknown key 'colour' in [plugin.hello]" % (
        d.conf_path, line_of(d.config_text, "colour = blue"))
    assert want in d.log(), d.log()
    r = d.check()
    assert r.returncode == 2 and want in r.stderr, r.stderr


def test_bad_value_in_plugin_section(loketd):
    d = loketd(plugins=["hello"], plugin_conf={"hello": {"tick": "often"}}, start=False)
    r = d.check()
    assert r.returncode == 2
    assert "%s:%d: tick: expected a duration" % (
        d.conf_path, line_of(d.config_text, "tick = often")) in r.stderr, r.stderr


def test_missing_plugin_file(loketd):
    d = loketd(plugins=[], plugins_key="hello", start=False)
    rc = d.start_fails()
    assert rc == 2
    errors = error_lines(d.log())
    assert len(errors) == 1, d.log()
    assert os.path.join(d.plugin_dir, "hello.so") in errors[0]
    assert "No such file or directory" in errors[0]


# 4. HTTP -------------------------------------------------------------------------------


def test_unknown_route_is_404_problem(loketd):
    d = loketd()
    doc = problem(*d.request("GET", "/no/such/thing"), 404)
    assert doc["title"] == "Not Found"


def test_wrong_method_is_405_with_allow(loketd):
    d = loketd()
    status, headers, body = d.request("POST", "/healthz", body=b"{}",
                                      headers={"Content-Type": "application/json"})
    problem(status, headers, body, 405)
    assert headers["Allow"] == "GET, HEAD"
    status, headers, body = d.request("DELETE", "/healthz")
    problem(status, headers, body, 405)
    assert headers["Allow"] == "GET, HEAD"


def test_headers_over_limit_is_431_problem(loketd):
    d = loketd(http={"max_header_size": "2k"})
    # Just under the limit passes.
    status, _, _ = d.request("GET", "/healthz", headers={"X-Pad": "a" * 1500})
    assert status == 200
    doc = problem(*d.request("GET", "/healthz", headers={"X-Pad": "a" * 3000}), 431)
    assert doc["title"] == "Request Header Fields Too Large"
    # A header block that never ends is cut off at the limit too.
    with d.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 3000)
        status, headers, body = parse_raw_response(read_response(s))
    problem(status, headers, body, 431)
    text = metrics_text(d)
    assert metric(text, 'loket_http_rejected_total{reason="header_too_large"}') == 2, text


def test_body_over_limit_is_413_problem(loketd):
    d = loketd(plugins=["hello"], http={"max_body_size": "1k"})
    doc = problem(*d.request("POST", "/hello/Jan", body=b"x" * 4096,
                             headers={"Content-Type": "text/plain"}), 413)
    assert doc["title"] == "Content Too Large"
    # A body far over the limit still gets the answer, not a reset connection.
    problem(*d.request("POST", "/hello/Jan", body=b"x" * (4 << 20),
                       headers={"Content-Type": "text/plain"}), 413)
    # The daemon still serves afterwards.
    assert d.request("GET", "/healthz")[0] == 200
    text = metrics_text(d)
    assert metric(text, 'loket_http_rejected_total{reason="body_too_large"}') == 2, text


def test_chunked_body_over_limit_is_413_problem(loketd):
    d = loketd(plugins=["hello"], http={"max_body_size": "1k"})
    chunk = b"x" * 4096
    with d.connect() as s:
        s.sendall(b"POST /hello/Jan HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Connection: close\r\n\r\n" + b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n")
        status, headers, body = parse_raw_response(read_response(s))
    problem(status, headers, body, 413)


@pytest.mark.parametrize("raw,statuses", [
    (b"GARBAGE\r\n\r\n", (400,)),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", (400,)),
    (b"TRACE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", (405, 501)),
], ids=["bad_request_line", "bad_content_length", "unsupported_method"])
def test_malformed_requests_get_problem_json(loketd, raw, statuses):
    """Errors are application/problem+json everywhere, also those evhttp finds itself."""
    d = loketd()
    with d.connect() as s:
        s.sendall(raw)
        status, headers, body = parse_raw_response(read_response(s))
    assert status in statuses, (status, body)
    problem(status, headers, body, status)
    assert d.request("GET", "/healthz")[0] == 200


def test_max_connections(loketd):
    d = loketd(http={"max_connections": "4"})
    assert wait_for(lambda: d.stats()["http_connections"] == "0", 5 * SLOW), d.stats()
    idle = [d.connect() for _ in range(4)]
    try:
        assert wait_for(lambda: d.stats()["http_connections"] == "4", 5 * SLOW), d.stats()
        with d.connect() as fifth:
            fifth.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = parse_raw_response(read_response(fifth))
        problem(status, headers, body, 503)
        assert headers.get("Connection") == "close"
        assert (headers.get("Retry-After") or "").isdigit(), "a 503 without Retry-After"
    finally:
        for s in idle:
            s.close()
    assert wait_for(lambda: d.stats()["http_connections"] == "0", 5 * SLOW), d.stats()
    for _ in range(6):
        assert d.request("GET", "/healthz")[0] == 200
    text = metrics_text(d)
    assert metric(text, 'loket_http_rejected_total{reason="too_many_connections"}') == 1, text


def test_idle_connection_is_closed_after_timeout(loketd):
    d = loketd(http={"timeout": "1s"})
    with d.connect(timeout=10 * SLOW) as s:
        t0 = time.monotonic()
        data = read_response(s)
        waited = time.monotonic() - t0
    assert data == b""
    assert waited < 10 * SLOW
    assert wait_for(lambda: d.stats()["http_connections"] == "0", 5 * SLOW), d.stats()


def test_keep_alive_connection_serves_several_requests(loketd):
    d = loketd()
    conn = http.client.HTTPConnection(d.host, d.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            assert resp.status == 200
            assert json.loads(resp.read())["status"] == "ok"
    finally:
        conn.close()


def test_request_arriving_in_pieces_is_answered(loketd):
    """A header block split over several TCP segments (slow links, proxies) still gets its
    answer."""
    d = loketd()
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with d.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in (req[:10], req[10:-2], req[-2:]):
            s.sendall(piece)
            time.sleep(0.05)  # lets each piece arrive on its own; not a speed assertion
        status, _, body = read_one_response(s.makefile("rb"))
    assert status == 200
    assert json.loads(body)["status"] == "ok"


def test_connection_close_request_is_answered(loketd):
    d = loketd()
    with d.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_response(s)
    status, headers, body = parse_raw_response(data)
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    # And the daemon is still there for the next client.
    assert d.request("GET", "/healthz")[0] == 200
    assert d.running()


def test_http10_request_is_answered(loketd):
    d = loketd()
    with d.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        data = read_response(s)
    status, _, body = parse_raw_response(data)
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    assert d.request("GET", "/healthz")[0] == 200


def test_pipelined_requests_are_answered_in_order(loketd):
    d = loketd(plugins=["hello"])
    with d.connect() as s:
        s.sendall(b"GET /hello/An HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /hello/Bo HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = s.makefile("rb")
        first = read_one_response(reader)
        second = read_one_response(reader)
    assert json.loads(first[2])["greeting"] == "Hallo, An"
    assert json.loads(second[2])["greeting"] == "Hallo, Bo"


def test_many_requests_in_a_row(loketd):
    """Every request on a fresh connection is answered (no lost or stuck replies)."""
    d = loketd(plugins=["hello"])
    for i in range(50):
        path = ("/healthz", "/hello/Jan", "/nope")[i % 3]
        status, _, _ = d.request("GET", path)
        assert status == (200, 200, 404)[i % 3], (i, path, status)
    assert d.running()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_http_clients_that_hang_up_or_are_refused_leak_nothing(loketd):
    d = loketd(http={"max_header_size": "1k", "max_body_size": "1k"})
    assert d.request("GET", "/healthz")[0] == 200
    assert wait_for(lambda: d.stats()["http_connections"] == "0", 5 * SLOW), d.stats()
    baseline = open_fds(d.proc.pid)
    sends = [
        b"",                                                    # connects, says nothing
        b"GET /healthz HTTP/1.1\r\nHost: x",                     # half a header block
        b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 2000,        # 431
        b"POST /healthz HTTP/1.1\r\nContent-Length: 5000\r\n\r\n",  # 413
        b"POST /healthz HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",  # half a body
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",               # answered, kept alive
    ]
    for i in range(48):
        with d.connect() as s:
            s.sendall(sends[i % len(sends)])
            if i % len(sends) in (2, 3, 5):
                s.recv(4096)
    assert wait_for(lambda: d.stats()["http_connections"] == "0", 5 * SLOW), d.stats()
    settled = wait_for(lambda: open_fds(d.proc.pid) <= baseline, 5 * SLOW)
    assert settled, "loketd holds %d file descriptors after 48 HTTP clients left (%d before)" % (
        open_fds(d.proc.pid), baseline)
    assert d.request("GET", "/healthz")[0] == 200


# 5. metrics ----------------------------------------------------------------------------


def test_metrics(loketd):
    d = loketd()
    series = 'loket_http_requests_total{route="/healthz",method="GET",status="200"}'
    bucket = 'loket_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"}'

    status, headers, body = get_metrics(d)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'loket_build_info{version="%s",abi="%s"} 1' % (VERSION, ABI) in text
    assert metric(text, "loket_uptime_seconds") is not None
    assert "# TYPE loket_http_requests_total counter" in text
    assert "# TYPE loket_http_request_duration_seconds histogram" in text
    before = metric(text, series) or 0
    before_bucket = metric(text, bucket) or 0

    n = 5
    for _ in range(n):
        assert d.request("GET", "/healthz")[0] == 200
    text = metrics_text(d)
    assert metric(text, series) == before + n, text
    assert metric(text, bucket) == before_bucket + n, text
    assert metric(text, 'loket_http_requests_total{route="/metrics",method="GET",status="200"}') \
        >= 1


def test_metrics_needs_an_admin_token_unless_public(loketd):
    d = loketd()
    doc = problem(*d.request("GET", "/metrics"), 401)
    assert "bearer token" in doc["detail"].lower(), doc
    agent = d.add_token("desk1", "agent")
    problem(*d.request("GET", "/metrics", headers={"Authorization": "Bearer " + agent}), 403)
    problem(*d.request("GET", "/metrics", headers={"Authorization": "Bearer lkt_nonsense"}), 401)
    public = loketd(http={"metrics_public": "yes"})
    status, headers, body = public.request("GET", "/metrics")
    assert status == 200, body
    assert b"loket_build_info" in body


def test_metrics_count_errors_by_status(loketd):
    d = loketd()
    for _ in range(2):
        assert d.request("GET", "/nope")[0] == 404
    assert d.request("POST", "/healthz", body=b"")[0] == 405
    text = metrics_text(d)
    assert metric(text, 'loket_http_requests_total{route="unmatched",method="GET",status="404"}') \
        == 2, text
    # Which route label a 405 carries is the daemon's choice; it is counted exactly once.
    n405 = re.findall(r'^loket_http_requests_total\{route="[^"]*",method="POST",status="405"\} (\S+)$',
                      text, re.M)
    assert [float(n) for n in n405] == [1], text


# 6. reload -----------------------------------------------------------------------------


def greeting(d):
    status, _, body = d.request("GET", "/hello/Jan")
    assert status == 200, body
    return json.loads(body)["greeting"]


def test_sighup_with_broken_config_keeps_running(loketd):
    d = loketd(plugins=["hello"], plugin_conf={"hello": {"greeting": "Dag"}})
    good = d.config_text
    bad = d.config(plugin_conf={"hello": {"greeting": "Goedemorgen"}}, http={"timeout": "soon"})
    d.reload_config(bad)
    mark = len(d.log())
    d.send_signal(signal.SIGHUP)
    m = d.wait_log(r"^\S+Z error loketd reload failed, keeping the running config: (.*)$",
                   after=mark)
    assert "%s:%d: timeout: expected a duration" % (d.conf_path, line_of(bad, "timeout = soon")) \
        in m.group(1)
    assert d.running()
    assert greeting(d) == "Dag, Jan"
    # A plugin-level error is refused the same way.
    d.reload_config(d.config(plugin_conf={"hello": {"greeting": "Hoi", "colour": "blue"}}))
    mark = len(d.log())
    d.send_signal(signal.SIGHUP)
    m = d.wait_log(r"^\S+Z error loketd reload failed.*$", after=mark)
    assert "%s:%d: unknown key 'colour' in [plugin.hello]" % (
        d.conf_path, line_of(d.config_text, "colour = blue")) in m.group(0)
    assert greeting(d) == "Dag, Jan"
    d.reload_config(good)
    stats = d.stats()
    assert (stats["reloads"], stats["reload_failures"]) == ("0", "2"), stats


def test_sighup_with_good_config_applies_it(loketd):
    d = loketd(plugins=["hello"], plugin_conf={"hello": {"greeting": "Dag"}})
    assert greeting(d) == "Dag, Jan"
    d.reload_config(d.config(plugin_conf={"hello": {"greeting": "Goeiendag"}}))
    mark = len(d.log())
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"^\S+Z info loketd reloaded config=%s$" % re.escape(d.conf_path), after=mark)
    assert greeting(d) == "Goeiendag, Jan"
    assert d.stats()["reloads"] == "1"


def test_reload_applies_http_limits(loketd):
    d = loketd()
    assert d.request("GET", "/healthz", headers={"X-Pad": "a" * 3000})[0] == 200
    d.reload_config(d.config(http={"max_header_size": "1k"}))
    r = d.ctl("reload")
    assert r.returncode == 0, r.stderr
    problem(*d.request("GET", "/healthz", headers={"X-Pad": "a" * 3000}), 431)


def test_reload_of_metrics_public_is_applied_or_warned(loketd):
    """A reload never ignores a changed setting in silence: it applies it, or it says that a
    restart is needed (as it does for listen and plugins)."""
    d = loketd()
    assert d.request("GET", "/metrics")[0] == 401
    d.reload_config(d.config(http={"metrics_public": "yes"}))
    mark = len(d.log())
    r = d.ctl("reload")
    assert r.returncode == 0, r.stderr
    applied = d.request("GET", "/metrics")[0] == 200
    warned = re.search(r"^\S+Z warn loketd .*metrics_public.*restart", d.log()[mark:], re.M)
    assert applied or warned, "metrics_public changed by reload: not applied and no warning; " \
        "log:\n" + d.log()


def test_reload_of_control_socket_is_applied_or_warned(loketd, tmp_path):
    d = loketd()
    new_sock = str(tmp_path / "other.sock")
    d.reload_config(d.config(loketd_conf={"control_socket": new_sock}))
    mark = len(d.log())
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"^\S+Z info loketd reloaded ", after=mark)
    applied = d.ctl("stats").returncode == 0
    warned = re.search(r"^\S+Z warn loketd .*control_socket.*restart", d.log()[mark:], re.M)
    assert applied or warned, "control_socket changed by reload: loketctl (reading the new " \
        "config) cannot reach loketd and nothing was logged; log:\n" + d.log()


def test_loketctl_reload(loketd):
    d = loketd(plugins=["hello"])
    d.reload_config(d.config(plugin_conf={"hello": {"greeting": "Salut"}}))
    r = d.ctl("reload")
    assert r.returncode == 0, r.stderr
    assert "reloaded %s" % d.conf_path in r.stdout
    assert greeting(d) == "Salut, Jan"


def test_loketctl_reload_bad_config(loketd):
    d = loketd(plugins=["hello"])
    # A plugin key the daemon itself refuses.
    d.reload_config(d.config(plugin_conf={"hello": {"greeting": "Hoi", "colour": "blue"}}))
    r = d.ctl("reload")
    assert r.returncode != 0
    assert "%s:%d: unknown key 'colour' in [plugin.hello]" % (
        d.conf_path, line_of(d.config_text, "colour = blue")) in r.stderr, r.stderr
    assert greeting(d) == "Hallo, Jan"
    # A config that does not even parse.
    d.reload_config(d.config(http={"max_body_size": "lots"}))
    r = d.ctl("reload")
    assert r.returncode != 0
    assert "%s:%d: max_body_size: expected a size" % (
        d.conf_path, line_of(d.config_text, "max_body_size = lots")) in r.stderr, r.stderr
    assert d.running()
    assert greeting(d) == "Hallo, Jan"
    d.reload_config(d.config())


# 7. shutdown ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_and_exits_zero(loketd, sig):
    d = loketd(plugins=["hello"])
    conn = http.client.HTTPConnection(d.host, d.port, timeout=5 * SLOW)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        d.send_signal(sig)
        rc = d.wait(5 * SLOW)
        assert rc == 0, "loketd exited %r; log:\n%s" % (rc, d.log())
        # The idle keep-alive connection was closed, not left hanging.
        conn.sock.settimeout(5)
        assert read_response(conn.sock) == b""
    finally:
        conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((d.host, d.port), timeout=2).close()
    log = d.log()
    assert re.search(r"^\S+Z info loketd stopping ", log, re.M), log
    assert re.search(r"^\S+Z info loketd stopped$", log, re.M), log
    assert not os.path.exists(d.control_socket)


# 8. loketctl ---------------------------------------------------------------------------


def test_loketctl_stats(loketd):
    d = loketd(plugins=["hello"])
    r = d.ctl("stats")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^pid: %d$" % d.proc.pid, r.stdout, re.M), r.stdout
    assert re.search(r"^version: %s$" % re.escape(VERSION), r.stdout, re.M), r.stdout
    assert re.search(r"^plugins:\n  - hello$", r.stdout, re.M), r.stdout


def test_loketctl_stats_without_plugins(loketd):
    d = loketd()
    r = d.ctl("stats")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^plugins: \(none\)$", r.stdout, re.M), r.stdout


def test_loketctl_version(loketd):
    d = loketd()
    r = d.ctl("version")
    assert r.returncode == 0, r.stderr
    assert "loketctl %s (plugin ABI %s)" % (VERSION, ABI) in r.stdout
    assert "loketd %s (plugin ABI %s)" % (VERSION, ABI) in r.stdout


def test_loketctl_check_config(loketd):
    d = loketd(plugins=["hello"], start=False)
    r = d.ctl("check-config")
    assert r.returncode == 0, r.stderr
    assert "%s: configuration OK" % d.conf_path in r.stdout
    text = d.config() + "[http]\nmax_body_size = lots\n"
    d.write_config(text)
    r = d.ctl("check-config")
    assert r.returncode == 2
    assert "%s:%d: max_body_size" % (d.conf_path, line_of(text, "max_body_size = lots")) \
        in r.stderr, r.stderr
    d.write_config(d.config(plugin_conf={"hello": {"colour": "blue"}}))
    r = d.ctl("check-config")
    assert r.returncode == 2
    assert "%s:%d: unknown key 'colour'" % (d.conf_path, line_of(d.config_text, "colour = blue")) \
        in r.stderr, r.stderr


def test_loketctl_check_config_loads_what_loketd_loads(loketd, tmp_path):
    """check-config reads the calendars, the catalogue and the rules as loketd does at start
    and on reload, so an admin finds a catalogue saved as Latin-1 or a rule that does not
    compile before the daemon does, with file:line."""
    catalogue = tmp_path / "catalogue.csv"
    with open(os.path.join(SRCDIR, "etc", "catalogue.csv"), "rb") as f:
        good = f.read()
    catalogue.write_bytes(good)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-ok.lua").write_text("loket.on('contact', function(c) c:tag('ok') end)\n")
    section = "[rules]\ndir = %s\ncatalogue = %s\n" % (rules, catalogue)
    d = loketd(extra=section + example_units(), start=False)
    r = d.ctl("check-config")
    assert r.returncode == 0 and "configuration OK" in r.stdout, r.stderr

    catalogue.write_bytes(good + "cafe,Caf\u00e9 aanvragen,1,,gemeente,1d,no,yes,caf\u00e9,Vrije tijd\n"
                          .encode("latin-1"))
    r = d.ctl("check-config")
    assert r.returncode == 2, r.stdout
    assert "%s:%d: name is not valid UTF-8" % (catalogue, good.count(b"\n") + 1) in r.stderr, \
        r.stderr
    catalogue.write_bytes(good)
    (rules / "20-broken.lua").write_text("loket.on('contact', function(c)\n  c:tag('x'\nend)\n")
    r = d.ctl("check-config")
    assert r.returncode == 2, r.stdout
    assert re.search(r"20-broken\.lua:3: .*expected", r.stderr), r.stderr


@pytest.mark.parametrize("cmd", ["stats", "version", "reload"])
def test_loketctl_daemon_not_running(loketd, cmd):
    d = loketd(start=False)
    r = d.ctl(cmd)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "loketd is not running" in r.stderr, r.stderr
    assert d.control_socket in r.stderr


def test_loketctl_after_crash_and_restart(loketd):
    """A socket left by a killed daemon reads as 'not running' and does not block a restart."""
    d = loketd()
    d.proc.kill()
    d.proc.wait()
    assert os.path.exists(d.control_socket)
    r = d.ctl("stats")
    assert r.returncode == 1
    assert "loketd is not running" in r.stderr, r.stderr
    d.proc = None
    d.close()
    d.start()
    assert d.ctl("stats").returncode == 0


def test_second_daemon_on_same_data_dir_is_refused(loketd, tmp_path):
    d = loketd()
    other = loketd(start=False)
    other.write_config(other.config(loketd_conf={"data_dir": d.data_dir}))
    rc = other.start_fails()
    assert rc == 2
    assert "another loketd is already running" in other.log(), other.log()
    # The first one is untouched and still reachable on its control socket.
    assert d.ctl("stats").returncode == 0
    assert d.request("GET", "/healthz")[0] == 200


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_control_socket_clients_that_hang_up_leak_nothing(loketd):
    """A client that connects and leaves without a command (a liveness probe, a second
    loketd checking for a running one, a cut connection) must not cost loketd a file
    descriptor: enough of them and loketd could accept nothing any more."""
    d = loketd()
    assert d.ctl("stats").returncode == 0
    baseline = open_fds(d.proc.pid)
    for i in range(40):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(d.control_socket)
            if i % 2:
                s.sendall(b'{"cmd": "sta')  # half a request, then gone
    # Each hang-up is noticed on the loop; a stats round trip after them proves they were.
    assert d.ctl("stats").returncode == 0
    settled = wait_for(lambda: open_fds(d.proc.pid) <= baseline, 5 * SLOW)
    assert settled, "loketd holds %d file descriptors after 40 control clients hung up " \
        "(%d before)" % (open_fds(d.proc.pid), baseline)


def test_control_socket_path_never_removes_a_file(loketd, tmp_path):
    """control_socket pointed at an existing file by mistake: loketd must not delete it
    (a stale socket may be replaced; a file that is not a socket is someone's data)."""
    precious = tmp_path / "precious.db"
    precious.write_bytes(b"the register")
    d = loketd(start=False, loketd_conf={"control_socket": str(precious)})
    d.spawn()
    wait_for(lambda: not d.running() or "ready" in d.log(), 10 * SLOW)
    assert precious.is_file() and precious.read_bytes() == b"the register", \
        "loketd removed %s to make its control socket; log:\n%s" % (precious, d.log())
    if not d.running():
        assert d.proc.returncode == 2
        assert str(precious) in d.log()


def test_control_socket_mode(loketd):
    d = loketd()
    st = os.stat(d.control_socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)


def test_test_clock_is_off_unless_loketd_runs_with_the_test_flag(loketd):
    """`loketctl debug clock` moves time only in a daemon started with LOKET_TEST_CLOCK=1
    (the test fixtures' flag): a production daemon refuses it and its clock stays put."""
    d = loketd()
    r = d.ctl("debug", "clock", "+1h")
    assert r.returncode == 1 and "the test clock is off" in r.stderr, (r.stdout, r.stderr)
    assert "test clock" not in d.log()

    t = loketd(test_clock=True)
    assert "test clock on (LOKET_TEST_CLOCK=1)" in t.log()
    r = t.ctl("debug", "clock", "+1h")
    assert r.returncode == 0 and r.stdout.startswith("clock now "), (r.stdout, r.stderr)
    for bad in ("1h", "+0s", "+gisteren"):
        r = t.ctl("debug", "clock", bad)
        assert r.returncode != 0, (bad, r.stdout, r.stderr)
