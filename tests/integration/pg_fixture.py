"""A throwaway PostgreSQL cluster for the integration suite's run on the pgsql driver.

One cluster per pytest session: initdb into a temp dir, the server on 127.0.0.1 only (a free
port) with its unix socket in that dir, fsync and synchronous_commit on (a 201 must mean
durable on PostgreSQL as on SQLite), a `loket` role that is not a superuser and logs in with a
password from a passfile (mode 0600), and a fresh database per register (CREATE DATABASE ...
OWNER loket TEMPLATE loket_template). `pg_ctl stop -m fast` at the end leaves nothing running.

initdb and postgres refuse to run as root; the tests here may run as root, so the server runs
as the `postgres` system user (the Debian package makes it) and owns the cluster's directory.
The standard library has no PostgreSQL client: setup and the tests that look into a
database use the `psql` command line, connecting as the superuser over the unix socket.
"""

import atexit
import csv
import glob
import io
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_USER = "postgres"       # the system user the server runs as when we are root
SUPERUSER = "postgres"     # the cluster's bootstrap superuser: setup only, over the socket
ROLE = "loket"             # what loketd logs in as: owns its database, nothing more
TEMPLATE = "loket_template"


class PgError(RuntimeError):
    pass


def pg_bindir():
    """The directory holding initdb, pg_ctl and postgres, or None when PostgreSQL is not
    installed. Debian keeps them in /usr/lib/postgresql/VERSION/bin, off PATH."""
    env = os.environ.get("LOKET_PG_BINDIR")
    if env:
        return env if os.access(os.path.join(env, "initdb"), os.X_OK) else None
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    versions = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        m = re.search(r"/postgresql/(\d+)/bin$", d)
        if m and os.access(os.path.join(d, "initdb"), os.X_OK):
            versions.append((int(m.group(1)), d))
    return max(versions)[1] if versions else None


def psql_path():
    return shutil.which("psql") or (pg_bindir() and os.path.join(pg_bindir(), "psql"))


def missing():
    """Why no cluster can be made here (a sentence naming the package), or None."""
    if pg_bindir() is None:
        return ("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
                "install the Debian package postgresql (scripts/install-deps --test)")
    if not psql_path() or not os.access(psql_path(), os.X_OK):
        return "psql is not installed: install the Debian package postgresql-client"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return ("running as root, and initdb refuses root: there is no system user %r to "
                    "run the cluster as (the Debian package postgresql makes it)" % PG_USER)
    return None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def literal(value):
    """An SQL literal for a Python value (None, bool, int, float, str, bytes)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, bytes):
        return "'\\x%s'::bytea" % value.hex()
    s = str(value)
    if "\0" in s:
        raise ValueError("an SQL string cannot hold NUL")
    return "'" + s.replace("'", "''") + "'"


def ident(name):
    return '"' + name.replace('"', '""') + '"'


class Cluster:
    """A running throwaway cluster; start() makes it, stop() removes it."""

    def __init__(self):
        self.bindir = pg_bindir()
        self.psql = psql_path()
        self.dir = None          # ours: holds the cluster dir and the client dir
        self.data = None         # PGDATA, owned by the server's user
        self.sockdir = None
        self.log_path = None
        self.passfile = None
        self.port = None
        self.password = None
        self.version = None
        self._run_as = {}
        self._databases = 0

    # running commands ----------------------------------------------------------------

    def _server_cmd(self, args, timeout=120, check=True):
        """Runs a server program (initdb, pg_ctl) as the cluster's owner."""
        r = subprocess.run([os.path.join(self.bindir, args[0])] + args[1:],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir, **self._run_as)
        if check and r.returncode != 0:
            raise PgError("%s failed (%d): %s%s%s" % (" ".join(args[:2]), r.returncode,
                                                       r.stdout, r.stderr, self._log_tail()))
        return r

    def _log_tail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n--- server log ---\n" + "".join(f.readlines()[-30:])
        except (OSError, TypeError):
            return ""

    def psql_run(self, sql, db="postgres", user=SUPERUSER, args=(), check=True, timeout=60):
        """psql -c SQL as user (the superuser by default) over the unix socket."""
        cmd = [self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sockdir,
               "-p", str(self.port), "-U", user, "-d", db] + list(args) + ["-c", sql]
        env = dict(os.environ, PGCONNECT_TIMEOUT="10")
        for k in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGSSLMODE"):
            env.pop(k, None)
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise PgError("psql on %s: %s\n%s" % (db, r.stderr.strip(), sql))
        return r

    def scalar(self, sql, db="postgres", user=SUPERUSER):
        r = self.psql_run(sql, db=db, user=user, args=["-A", "-t"])
        return r.stdout.strip()

    def query(self, sql, db="postgres", user=SUPERUSER):
        """The rows of a SELECT as a list of dicts (in column order), typed as JSON types
        them."""
        text = self.scalar("SELECT coalesce(json_agg(q), '[]') FROM (%s) q" % sql, db=db,
                           user=user)
        return json.loads(text)

    # life ----------------------------------------------------------------------------

    def start(self):
        why = missing()
        if why:
            raise PgError(why)
        # Short: the socket path (sockdir/.s.PGSQL.PORT) must fit in sun_path.
        self.dir = tempfile.mkdtemp(prefix="loket-pg-", dir="/tmp")
        cluster_dir = os.path.join(self.dir, "cluster")
        client_dir = os.path.join(self.dir, "client")
        os.mkdir(cluster_dir, 0o700)
        os.mkdir(client_dir, 0o700)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chmod(self.dir, 0o711)   # the server's user passes through to its own dir
            os.chown(cluster_dir, pw.pw_uid, pw.pw_gid)
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
                            "env": dict(os.environ, HOME=cluster_dir, USER=PG_USER,
                                        LOGNAME=PG_USER)}
        self.data = os.path.join(cluster_dir, "data")
        self.sockdir = os.path.join(cluster_dir, "sock")
        self.log_path = os.path.join(cluster_dir, "server.log")
        self.password = secrets.token_hex(16)
        pwfile = os.path.join(cluster_dir, "su.pw")
        # initdb wants a file for the superuser's password; nobody logs in with it (the
        # socket is trust, inside a directory only the owner and root can enter).
        self._write_owned(pwfile, secrets.token_hex(16) + "\n")
        self._server_cmd(["initdb", "-D", self.data, "-U", SUPERUSER, "-A", "scram-sha-256",
                          "--auth-local=trust", "--pwfile", pwfile, "-E", "UTF8",
                          "--locale=C.UTF-8", "--no-instructions"])
        os.unlink(pwfile)
        self._make_dir_owned(self.sockdir)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# loket tests (tests/integration/pg_fixture.py)\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "unix_socket_directories = '%s'\n"
                    "unix_socket_permissions = 0700\n"
                    # A 201 is durable on this driver too: nothing that weakens a commit.
                    "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n"
                    "max_connections = 300\nshared_buffers = 32MB\n"
                    "log_min_messages = warning\nlog_min_error_statement = error\n"
                    "timezone = 'UTC'\n" % self.sockdir)
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("# loket tests: the superuser over the socket only; loket over TCP with\n"
                    "# its password (scram-sha-256); nothing else.\n"
                    "local all %s trust\n"
                    "host all %s 127.0.0.1/32 scram-sha-256\n" % (SUPERUSER, ROLE))
        self._start_server()
        atexit.register(self.stop)
        self.version = self.scalar("SHOW server_version")
        self.psql_run("CREATE ROLE %s LOGIN PASSWORD %s NOSUPERUSER NOCREATEDB NOCREATEROLE "
                      "NOREPLICATION NOBYPASSRLS" % (ident(ROLE), literal(self.password)))
        self.psql_run("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8'"
                      % (ident(TEMPLATE), ident(ROLE)))
        self.psql_run("ALTER DATABASE %s IS_TEMPLATE true ALLOW_CONNECTIONS false"
                      % ident(TEMPLATE))
        self.passfile = os.path.join(client_dir, "pgpass")
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("127.0.0.1:%d:*:%s:%s\n" % (self.port, ROLE, self.password))
        return self

    def _write_owned(self, path, text):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if self._run_as:
            os.chown(path, self._run_as["user"], self._run_as["group"])

    def _make_dir_owned(self, path):
        os.mkdir(path, 0o700)
        if self._run_as:
            os.chown(path, self._run_as["user"], self._run_as["group"])

    def _start_server(self):
        """pg_ctl start on a free port; another port when a racing process took it."""
        for attempt in range(5):
            self.port = _free_port()
            conf = os.path.join(self.data, "postgresql.conf")
            with open(conf) as f:
                text = re.sub(r"(?m)^port = \d+\n", "", f.read())
            with open(conf, "w") as f:
                f.write(text + "port = %d\n" % self.port)
            r = self._server_cmd(["pg_ctl", "-D", self.data, "-l", self.log_path, "-w",
                                  "-t", "60", "start"], check=False)
            if r.returncode == 0:
                return
            if "could not bind" not in self._log_tail() or attempt == 4:
                raise PgError("pg_ctl start failed (%d): %s%s%s" % (
                    r.returncode, r.stdout, r.stderr, self._log_tail()))

    def stop_server(self):
        """pg_ctl stop -m fast, keeping the cluster: PostgreSQL gone from under a daemon
        (test_pgsql.py); start_server brings it back on the same port."""
        self._server_cmd(["pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop"])

    def start_server(self):
        """pg_ctl start on the port the cluster had, so conninfos stay valid."""
        r = self._server_cmd(["pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", "60",
                              "start"], check=False)
        if r.returncode != 0:
            raise PgError("pg_ctl start failed (%d): %s%s%s" % (
                r.returncode, r.stdout, r.stderr, self._log_tail()))

    def running(self):
        return self.data is not None and os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def stop(self):
        """pg_ctl stop -m fast, then the temp dir goes; kill -9 when fast did not do."""
        if self.dir is None:
            return
        if self.running():
            r = self._server_cmd(["pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30",
                                  "stop"], check=False)
            if r.returncode != 0 and self.running():
                try:
                    with open(os.path.join(self.data, "postmaster.pid")) as f:
                        os.kill(int(f.readline()), signal.SIGKILL)
                    time.sleep(0.5)
                except (OSError, ValueError):
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = self.data = None

    # databases -----------------------------------------------------------------------

    def create_database(self, name=None):
        """A new empty database owned by loket; returns its name."""
        if name is None:
            self._databases += 1
            name = "loket_%d_%d" % (os.getpid(), self._databases)
        self.psql_run("CREATE DATABASE %s OWNER %s TEMPLATE %s" % (ident(name), ident(ROLE),
                                                                   ident(TEMPLATE)))
        return name

    def drop_database(self, name):
        """DROP DATABASE, refused (False) while someone is connected to it."""
        r = self.psql_run("DROP DATABASE IF EXISTS %s" % ident(name), check=False)
        return r.returncode == 0

    def conninfo(self, dbname):
        """What loketd's [storage] conninfo says: TCP on 127.0.0.1, the loket role, its
        password from the passfile."""
        return "dbname=%s host=127.0.0.1 port=%d user=%s passfile=%s" % (
            dbname, self.port, ROLE, self.passfile)


class Connection:
    """Enough of a DB-API connection, over psql, for the tests that look into a register:
    execute(sql, params) with ? placeholders, fetchone/fetchall, description, close.
    Values come back typed as JSON types them (integers, strings, None); a json or jsonb
    value comes back as its JSON text, as SQLite hands back the text it stores."""

    def __init__(self, cluster, dbname):
        self.cluster, self.dbname = cluster, dbname

    def execute(self, sql, params=()):
        parts = sql.split("?")
        if len(parts) - 1 != len(params):
            raise PgError("%d placeholders, %d parameters: %s" % (len(parts) - 1, len(params),
                                                                  sql))
        text = parts[0] + "".join(literal(p) + rest for p, rest in zip(params, parts[1:]))
        if re.match(r"(?is)\s*(select|with|values)\b", text):
            rows = self.cluster.query(text, db=self.dbname)
            if rows:
                names = list(rows[0])
            else:  # no row to name the columns: psql's CSV header does
                out = self.cluster.psql_run("SELECT * FROM (%s) q LIMIT 0" % text,
                                            db=self.dbname, args=["--csv"]).stdout
                names = next(csv.reader(io.StringIO(out)), [])
            return _Cursor([tuple(json.dumps(v) if isinstance(v, (dict, list)) else v
                                  for v in r.values()) for r in rows],
                           [(k, None, None, None, None, None, None) for k in names])
        self.cluster.psql_run(text, db=self.dbname)
        return _Cursor([], None)

    def commit(self):
        pass

    def close(self):
        pass


class _Cursor:
    def __init__(self, rows, description):
        self._rows, self.description = rows, description

    def fetchall(self):
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self):
        return self._rows.pop(0) if self._rows else None

    def __iter__(self):
        return iter(self.fetchall())
