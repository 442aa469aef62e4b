"""Fixtures that run a real loketd from the build tree, with the standard library as client.

Paths come from LOKET_BUILDDIR and LOKET_SRCDIR (default: the repository root two levels
up). LOKET_VALGRIND, when set to anything but "" or "none", runs loketd under valgrind:
"1"/"yes" picks a default command line, anything else is used as the command prefix.

LOKET_TEST_DRIVER picks the register's storage driver for the whole run: sqlite (the default)
or pgsql. On pgsql every daemon's config gets `[storage] driver = pgsql` and a conninfo to a
database of its own in a throwaway cluster (pg_fixture.py), one database per data_dir as the
SQLite register is one file per data_dir; tests marked sqlite_only are deselected and counted.
tests/integration.sh runs the suite once per driver in LOKET_TEST_DRIVERS.
"""

import concurrent.futures
import gc
import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import weakref

import pytest

import pg_fixture

_HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.environ.get("LOKET_SRCDIR") or os.path.join(_HERE, "..", ".."))
BUILDDIR = os.path.abspath(os.environ.get("LOKET_BUILDDIR") or SRCDIR)
LOKETD = os.path.join(BUILDDIR, "core", "loketd")
LOKETCTL = os.path.join(BUILDDIR, "core", "loketctl")
PLUGIN_DIRS = [
    os.path.join(BUILDDIR, "plugins", ".libs"),
    os.path.join(BUILDDIR, "plugins", "store_pgsql", ".libs"),
    os.path.join(BUILDDIR, "tests", "plugins", ".libs"),
]

DRIVERS = ("sqlite", "pgsql")
DRIVER = os.environ.get("LOKET_TEST_DRIVER") or "sqlite"
if DRIVER not in DRIVERS:
    raise RuntimeError("LOKET_TEST_DRIVER=%s: expected one of %s" % (DRIVER, ", ".join(DRIVERS)))
# The pgsql driver is a plugin; a daemon on it finds store_pgsql.so in its plugin_dir.
PGSQL_PLUGIN = "store_pgsql"

_VALGRIND = os.environ.get("LOKET_VALGRIND", "").strip()
if _VALGRIND.lower() in ("", "none", "0", "no"):
    VALGRIND = []
elif _VALGRIND.lower() in ("1", "yes", "true"):
    VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite"]
else:
    VALGRIND = shlex.split(_VALGRIND)
# Everything is slower under valgrind; waits (never assertions of speed) stretch with it.
SLOW = 5 if VALGRIND else 1

START_TIMEOUT = 10 * SLOW
STOP_TIMEOUT = 10 * SLOW

LOG_LINE = re.compile(r"^\S+Z (debug|info|warn|error) \S+ ")


def package_version():
    """PACKAGE_VERSION from the build tree's config.h."""
    with open(os.path.join(BUILDDIR, "config.h")) as f:
        m = re.search(r'#define PACKAGE_VERSION "([^"]*)"', f.read())
    return m.group(1) if m else None


def find_plugin(name):
    for d in PLUGIN_DIRS:
        path = os.path.join(d, name + ".so")
        if os.path.exists(path):
            return path
    if name == PGSQL_PLUGIN:
        how = "configure with libpq (libpq-dev) and `make`"
    else:
        how = "`make %s.la`" % ("plugins/" + name if name == "hello" else "tests/plugins/" + name)
    raise FileNotFoundError("plugin %s.so is not built (looked in %s); build it with %s"
                            % (name, ", ".join(PLUGIN_DIRS), how))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout, interval=0.02):
    """Polls fn until it returns something truthy; returns that, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def render_config(sections):
    """INI text from a list of (section, {key: value}) or raw strings, in order."""
    out = []
    for item in sections:
        if isinstance(item, str):
            out.append(item.rstrip("\n"))
            continue
        name, keys = item
        out.append("[%s]" % name)
        for k, v in keys.items():
            out.append("%s = %s" % (k, v))
    return "\n".join(out) + "\n"


def line_of(text, needle, nth=1):
    """1-based number of the nth line of text that contains needle."""
    seen = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == nth:
                return i
    raise ValueError("%r not in config text" % needle)


class Loketd:
    """One loketd instance in its own tmp dir: config, plugin_dir, data_dir, log."""

    def __init__(self, tmp_path, plugins=(), plugins_key=None, http=None, plugin_conf=None,
                 extra=None, loketd_conf=None, test_clock=False):
        self.dir = tmp_path
        self.data_dir = str(tmp_path / "data")
        self.plugin_dir = str(tmp_path / "plugins")
        self.conf_path = str(tmp_path / "loket.conf")
        self.log_path = str(tmp_path / "loketd.log")
        self.port = free_port()
        self.host = "127.0.0.1"
        self.proc = None
        self._log_file = None
        self.expect_exit_code = 0  # checked at teardown when the test left loketd running
        # The test clock (core/lib/util.h): with it, move_clock() moves the daemon's time
        # forward; clock_offset is where a restarted daemon's clock starts.
        self.test_clock = test_clock
        self.clock_offset = 0.0

        os.mkdir(self.plugin_dir)
        os.chmod(self.plugin_dir, 0o755)
        for name in plugins:
            self.add_plugin(name)
        if DRIVER == "pgsql":
            self.add_plugin(PGSQL_PLUGIN)
        self.plugin_names = list(plugins) if plugins_key is None else plugins_key.split()
        self.write_config(self.config(http=http, plugin_conf=plugin_conf, extra=extra,
                                      loketd_conf=loketd_conf, plugins_key=plugins_key))

    # config -------------------------------------------------------------------------

    def add_plugin(self, name):
        dst = os.path.join(self.plugin_dir, name + ".so")
        shutil.copyfile(find_plugin(name), dst)
        os.chmod(dst, 0o755)
        return dst

    def config(self, http=None, plugin_conf=None, extra=None, loketd_conf=None,
               plugins_key=None):
        """The config text for this instance; plugin_conf maps NAME to {key: value}."""
        ld = {
            "listen": "%s:%d" % (self.host, self.port),
            "data_dir": self.data_dir,
            "plugin_dir": self.plugin_dir,
            "plugins": " ".join(self.plugin_names) if plugins_key is None else plugins_key,
        }
        # The control socket path must fit in sun_path; only move it when the tmp dir is long.
        if len(os.path.join(self.data_dir, "loketd.sock")) >= 100:
            short = os.path.join("/tmp", "loket-%d-%d.sock" % (os.getpid(), self.port))
            ld["control_socket"] = short
        ld.update(loketd_conf or {})
        sections = [("loketd", ld)]
        if http:
            sections.append(("http", dict(http)))
        storage = storage_keys(self, ld["data_dir"])
        if storage:
            sections.append(STORAGE_MARK)
            sections.append(("storage", storage))
        for name, keys in (plugin_conf or {}).items():
            sections.append(("plugin." + name, dict(keys)))
        if extra:
            sections.append(extra)
        return render_config(sections)

    def write_config(self, text):
        text = storage_yield(text)
        with open(self.conf_path, "w") as f:
            f.write(text)
        self.config_text = text

    reload_config = write_config

    @property
    def control_socket(self):
        m = re.search(r"^control_socket = (.*)$", self.config_text, re.M)
        return m.group(1) if m else os.path.join(self.data_dir, "loketd.sock")

    # process ------------------------------------------------------------------------

    def db(self):
        """A connection to this daemon's register, whatever the driver: sqlite3 read-only on
        data_dir/loket.db, or (pgsql) one over psql on its database (pg_fixture.Connection:
        execute with ? placeholders, fetchone, fetchall). Errors of either are sqlite3 or
        pg_fixture.PgError."""
        if DRIVER == "pgsql":
            return pg_fixture.Connection(REGISTERS.start(), REGISTERS.database_of(self))
        return sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data_dir, "loket.db"),
                               uri=True, timeout=10)

    def command(self, *args):
        return VALGRIND + [LOKETD, "-c", self.conf_path] + list(args)

    def spawn(self):
        """Starts loketd without waiting for it to answer."""
        assert self.proc is None, "loketd already started"
        storage_prepare(self)
        self._log_file = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("LOKET_TEST_CLOCK", None)
        env.pop("LOKET_TEST_CLOCK_OFFSET", None)
        if self.test_clock:
            env["LOKET_TEST_CLOCK"] = "1"
            if self.clock_offset > 0:
                env["LOKET_TEST_CLOCK_OFFSET"] = "%dms" % int(self.clock_offset * 1000)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=self._log_file,
                                     cwd=str(self.dir), env=env)
        return self.proc

    def start(self):
        """Starts loketd and waits until /healthz answers 200."""
        self.spawn()

        def up():
            if self.proc.poll() is not None:
                return "exited"
            try:
                status, _, _ = self.request("GET", "/healthz", timeout=1)
            except OSError:
                return None
            return "up" if status == 200 else None

        state = wait_for(up, START_TIMEOUT, interval=0.05)
        assert state == "up", "loketd did not answer /healthz within %ds (%s, rc=%s); log:\n%s" % (
            START_TIMEOUT, state or "timeout", self.proc.returncode, self.log())
        return self

    def start_fails(self, timeout=START_TIMEOUT):
        """Starts loketd expecting it to give up; returns its exit code."""
        self.spawn()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("loketd kept running although its start should fail; log:\n" + self.log())
        return rc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for loketd to exit; returns the exit code or None on timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM):
        """Signals loketd and waits; kill -9 after STOP_TIMEOUT. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "killed"
        return self.proc.returncode

    def close(self):
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def check(self, *args):
        """Runs `loketd -c FILE -t`; returns the CompletedProcess."""
        storage_prepare(self)
        return subprocess.run([LOKETD, "-c", self.conf_path, "-t"] + list(args),
                              capture_output=True, text=True, timeout=30 * SLOW)

    # clients ------------------------------------------------------------------------

    def url(self, path):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def request(self, method, path, body=None, headers=None, timeout=5 * SLOW):
        """One request on a new connection: (status, headers, body); never raises on 4xx/5xx."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def connect(self, timeout=5 * SLOW):
        """A raw TCP connection to the HTTP port."""
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=5 * SLOW, after=0):
        """Polls the log for a line matching pattern (past offset after); returns the match."""
        rx = re.compile(pattern, re.M)
        m = wait_for(lambda: rx.search(self.log(), after), timeout)
        assert m, "no log line matching %r within %ss; log:\n%s" % (pattern, timeout, self.log())
        return m

    def ctl(self, *args, timeout=10 * SLOW):
        return subprocess.run([LOKETCTL, "-c", self.conf_path] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def move_clock(self, seconds):
        """Moves the running daemon's clock forward (`loketctl debug clock`, test clock on);
        a restart keeps the moved time. Returns the daemon's time now (RFC 3339)."""
        assert self.test_clock, "start loketd with test_clock=True to move its clock"
        r = self.ctl("debug", "clock", "+%dms" % int(seconds * 1000))
        assert r.returncode == 0, "loketctl debug clock: %s%s" % (r.stdout, r.stderr)
        self.clock_offset += seconds
        return r.stdout.split()[-1]

    def add_token(self, name, role, *options):
        """`loketctl token add NAME ROLE ...`; returns the bearer token it prints once."""
        r = self.ctl("token", "add", name, role, *options)
        assert r.returncode == 0, "token add failed: %s\n%s" % (r.stderr, self.log())
        return r.stdout.strip()

    def stats(self):
        """`loketctl stats` as a dict of its top-level scalar lines."""
        r = self.ctl("stats")
        assert r.returncode == 0, r.stderr
        out = {}
        for line in r.stdout.splitlines():
            m = re.match(r"^(\w+): (.*)$", line)
            if m:
                out[m.group(1)] = m.group(2)
        return out


@pytest.fixture
def loketd(tmp_path):
    """Factory: loketd(plugins=[...], http={...}, plugin_conf={...}, extra=..., start=True).

    Each call gets its own sub-directory of tmp_path. Teardown sends SIGTERM, waits
    (kill -9 after 10 s) and checks that a daemon still running at the end exits 0.
    """
    instances = []

    def make(plugins=(), start=True, **kw):
        d = tmp_path / ("d%d" % len(instances))
        d.mkdir()
        inst = Loketd(d, plugins=plugins, **kw)
        instances.append(inst)
        if start:
            inst.start()
        return inst

    yield make

    problems = []
    for inst in reversed(instances):
        was_running = inst.running()
        rc = inst.stop()
        inst.close()
        if was_running and rc != inst.expect_exit_code:
            problems.append("loketd in %s exited %r on SIGTERM at teardown; log:\n%s"
                            % (inst.dir, rc, inst.log()))
    assert not problems, "\n".join(problems)


# storage driver ------------------------------------------------------------------------------

STORAGE_MARK = "; the storage driver under test (LOKET_TEST_DRIVER, tests/integration/conftest.py)"


class _PgRegisters:
    """The pgsql run's registers: one database per data_dir in the session's cluster, made
    when a daemon first starts (or checks its config) on it, dropped once no Loketd of that
    data_dir is left, i.e. the test or module that made it is over.

    CREATE and DROP DATABASE cost a few hundred milliseconds each with fsync on; a test
    should not wait for them. One background worker keeps SPARES databases made ahead (a
    register takes one by a rename, a catalog change) and drops the registers done with."""

    SPARES = 2

    def __init__(self):
        self.cluster = None
        self.names = {}      # data_dir -> database name
        self.owners = {}     # database name -> the Loketd instances on it (weak)
        self.made = set()
        self.counter = 0
        self.deselected = 0
        self.stats = {"created": 0, "dropped": 0}
        self.worker = None
        self.spares = []     # futures of databases made ahead: their names
        self.drops = {}      # database name -> future of its DROP (True when gone)

    def start(self):
        if self.cluster is None:
            self.cluster = pg_fixture.Cluster().start()
            self.worker = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="pg-registers")
            self._refill()
        return self.cluster

    def stop(self):
        if self.worker is not None:
            self.worker.shutdown(wait=True, cancel_futures=True)
            self.worker = None
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None

    def _refill(self):
        while len(self.spares) < self.SPARES:
            self.counter += 1
            self.spares.append(self.worker.submit(self.cluster.create_database,
                                                  "loket_spare_%d" % self.counter))

    def name_for(self, d, data_dir):
        name = self.names.get(data_dir)
        if name is None:
            self.counter += 1
            name = self.names[data_dir] = "loket_%d" % self.counter
            self.owners[name] = weakref.WeakSet()
        self.owners[name].add(d)
        return name

    def database_of(self, d):
        m = re.findall(r"^conninfo = .*\bdbname=(\S+)", getattr(d, "config_text", ""), re.M)
        name = m[-1] if m else self.name_for(d, d.data_dir)
        self.prepare(name)
        return name

    def prepare(self, name):
        if name not in self.owners or name in self.made:
            return
        cluster = self.start()
        spare = None
        while spare is None and self.spares and self.spares[0].done():
            try:
                spare = self.spares.pop(0).result()
            except pg_fixture.PgError:
                pass
        if spare is not None:
            cluster.psql_run("ALTER DATABASE %s RENAME TO %s" % (pg_fixture.ident(spare),
                                                                  pg_fixture.ident(name)))
        else:  # none ready: make it now rather than wait behind the worker's queue
            cluster.create_database(name)
        self.made.add(name)
        self.stats["created"] += 1
        self._refill()

    def sweep(self):
        """Drops, in the background, the databases no Loketd refers to any more; one that
        someone is still connected to stays, and is tried again after the next test."""
        gc.collect()
        for name, done in list(self.drops.items()):
            if not done.done():
                continue
            del self.drops[name]
            if done.exception() is None and done.result():
                self.made.discard(name)
                self.owners.pop(name, None)
                self.stats["dropped"] += 1
        for name, owners in list(self.owners.items()):
            if len(owners) or name in self.drops:
                continue
            # A daemon that comes back to this data_dir gets a new register, as it would
            # find no loket.db in a new directory.
            for k in [k for k, v in self.names.items() if v == name]:
                del self.names[k]
            if name in self.made:
                self.drops[name] = self.worker.submit(self.cluster.drop_database, name)
            else:
                del self.owners[name]


REGISTERS = _PgRegisters()


def storage_keys(d, data_dir):
    """The [storage] keys for a daemon on data_dir under the driver of this run; none on
    sqlite, whose register is data_dir/loket.db by default."""
    if DRIVER != "pgsql":
        return None
    cluster = REGISTERS.start()
    return {"driver": "pgsql", "conninfo": cluster.conninfo(REGISTERS.name_for(d, data_dir))}


def storage_prepare(d):
    """Makes the database a daemon's config names before the daemon starts on it."""
    if DRIVER != "pgsql" or not hasattr(d, "config_text"):
        return
    for name in re.findall(r"^conninfo = .*\bdbname=(\S+)", d.config_text, re.M):
        REGISTERS.prepare(name)


def storage_yield(text):
    """A test that writes a [storage] section of its own has the last word: the keys it sets
    are commented out of the driver's section (in place, so line numbers stay)."""
    if STORAGE_MARK not in text:
        return text
    lines = text.split("\n")
    start = lines.index(STORAGE_MARK)
    ours = start + 1
    end = ours + 1
    while end < len(lines) and re.match(r"^\w+ = ", lines[end]):
        end += 1
    theirs, section = set(), None
    for i, line in enumerate(lines):
        m = re.match(r"^\s*\[([^\]]*)\]", line)
        if m:
            section = m.group(1).strip() if not ours <= i < end else None
            continue
        m = re.match(r"^\s*([^;#=\s][^=]*?)\s*=", line)
        if m and section == "storage":
            theirs.add(m.group(1))
    for i in range(ours + 1, end):
        key = lines[i].split(" = ", 1)[0]
        if key in theirs:
            lines[i] = "; %s (the test's own [storage] section sets %s)" % (lines[i], key)
    return "\n".join(lines)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sqlite_only(reason): tests the SQLite driver itself (its files, the fault "
        "shim under it, readers, migrations of a SQLite file); deselected, and counted, on the "
        "pgsql run")
    config.addinivalue_line(
        "markers", "pgsql_only(reason): tests what only a shared PostgreSQL register has "
        "(several nodes, a server restarted under load); deselected, and counted, on the "
        "sqlite run")


def pytest_collection_modifyitems(config, items):
    other = "sqlite_only" if DRIVER == "pgsql" else "pgsql_only"
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker(other) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    REGISTERS.deselected = len(drop)


def pytest_report_header(config):
    line = "loket storage driver: %s (LOKET_TEST_DRIVER)" % DRIVER
    if DRIVER == "pgsql":
        line += "; a throwaway PostgreSQL cluster (%s), a database per data_dir" % (
            pg_fixture.pg_bindir() or "PostgreSQL not installed")
    return line


def pytest_terminal_summary(terminalreporter):
    if DRIVER == "sqlite" and REGISTERS.deselected:
        terminalreporter.write_line(
            "loket sqlite run: %d tests marked pgsql_only deselected" % REGISTERS.deselected)
    if DRIVER == "pgsql":
        terminalreporter.write_line(
            "loket pgsql run: %d tests marked sqlite_only deselected; %d databases made, "
            "%d dropped before the cluster went" % (REGISTERS.deselected,
                                                   REGISTERS.stats["created"],
                                                   REGISTERS.stats["dropped"]))


@pytest.fixture(scope="session", autouse=True)
def storage_driver(record_testsuite_property):
    """The run's storage driver; on pgsql the session's cluster, started before the first
    test (every test errors, loudly, when it cannot be) and stopped after the last."""
    record_testsuite_property("loket_driver", DRIVER)
    record_testsuite_property("loket_deselected", REGISTERS.deselected)
    if DRIVER == "pgsql":
        find_plugin(PGSQL_PLUGIN)
        record_testsuite_property("postgresql", REGISTERS.start().version)
    yield DRIVER
    REGISTERS.stop()


@pytest.fixture(autouse=True)
def _storage_sweep():
    yield
    if DRIVER == "pgsql" and REGISTERS.cluster is not None:
        REGISTERS.sweep()


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's PostgreSQL cluster (the pgsql run's own, or one for this fixture on the
    sqlite run). Without PostgreSQL installed: a skip that says what to install, or a failure
    when CI=true."""
    why = pg_fixture.missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and " + why)
        pytest.skip(why)
    return REGISTERS.start()


@pytest.fixture
def pg_database(pg_cluster):
    """A fresh empty database of this test's own, owned by loket: (cluster, name). Dropped
    after the test."""
    name = pg_cluster.create_database()
    yield pg_cluster, name
    pg_cluster.drop_database(name)
