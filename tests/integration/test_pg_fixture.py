"""The throwaway PostgreSQL cluster of the pgsql run (pg_fixture.py) is what the driver's tests
assume: reachable on 127.0.0.1 only, loketd's role no superuser, an empty database of its own
per test, durable commits. Runs on every driver's run; without PostgreSQL installed it is
skipped with the package to install, and under CI=true it fails instead."""

import os
import re
import socket
import stat
import subprocess

import pytest

import pg_fixture
from conftest import DRIVER, Loketd


def as_loket(cluster, dbname, sql):
    """psql as loketd connects: its conninfo (TCP, the loket role, the passfile); no
    password in the environment. Returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run([cluster.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                           cluster.conninfo(dbname), "-c", sql],
                          capture_output=True, text=True, timeout=30, env=env)


def listening(port):
    """The local addresses a TCP socket LISTENs on for port, from /proc/net/tcp{,6}."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                if len(addr) == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, 32, 8))
                    found.append(socket.inet_ntop(socket.AF_INET6, raw))
    return found


def test_cluster_answers_on_127_0_0_1_only(pg_database):
    cluster, name = pg_database
    r = as_loket(cluster, name, "SELECT inet_server_addr(), current_setting('listen_addresses')")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "127.0.0.1|127.0.0.1", r.stdout
    assert listening(cluster.port) == ["127.0.0.1"], listening(cluster.port)
    # Another loopback address reaches this host too, but nothing listens there.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", cluster.port), timeout=5).close()
    # The unix socket is in the cluster's own directory, which only its owner enters.
    sock = os.path.join(cluster.sockdir, ".s.PGSQL.%d" % cluster.port)
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(cluster.sockdir).st_mode) == 0o700


def test_loket_role_is_not_a_superuser(pg_database):
    cluster, name = pg_database
    r = as_loket(cluster, name, "SELECT current_user, rolsuper, rolcreatedb, rolcreaterole,"
                 " rolreplication, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "loket|f|f|f|f|f", r.stdout
    r = as_loket(cluster, name, "CREATE DATABASE not_for_loket")
    assert r.returncode != 0 and "permission denied" in r.stderr, (r.stdout, r.stderr)
    r = as_loket(cluster, name, "ALTER SYSTEM SET fsync = off")
    assert r.returncode != 0 and "permission denied" in r.stderr, (r.stdout, r.stderr)
    # It owns its database: what the driver needs to make its tables.
    r = as_loket(cluster, name, "CREATE TABLE mine (id bigint); SELECT tableowner FROM "
                 "pg_tables WHERE tablename = 'mine'")
    assert r.returncode == 0 and r.stdout.strip() == "loket", (r.stdout, r.stderr)


def test_loket_logs_in_with_the_passfile_only(pg_database, tmp_path):
    cluster, name = pg_database
    assert stat.S_IMODE(os.stat(cluster.passfile).st_mode) == 0o600
    assert re.fullmatch(r"dbname=%s host=127\.0\.0\.1 port=%d user=loket passfile=\S+"
                        % (name, cluster.port), cluster.conninfo(name)), cluster.conninfo(name)
    empty = tmp_path / "pgpass"
    empty.write_text("")
    empty.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    r = subprocess.run([cluster.psql, "-X", "-w", "-c", "SELECT 1",
                        cluster.conninfo(name).replace(cluster.passfile, str(empty))],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode != 0 and "password" in r.stderr, (r.stdout, r.stderr)


SEEN = []


@pytest.mark.parametrize("which", ["first", "second"])
def test_each_test_gets_an_empty_database_of_its_own(pg_database, which):
    cluster, name = pg_database
    r = as_loket(cluster, name, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    assert r.returncode == 0 and r.stdout.strip() == "0", (r.stdout, r.stderr)
    assert name not in SEEN, "database %s handed out twice" % name
    for before in SEEN:
        # The earlier test's database is gone with its test.
        assert cluster.scalar("SELECT count(*) FROM pg_database WHERE datname = '%s'"
                              % before) == "0", before
    SEEN.append(name)
    r = as_loket(cluster, name, "CREATE TABLE left_behind (who text); "
                 "INSERT INTO left_behind VALUES ('%s')" % which)
    assert r.returncode == 0, r.stderr


def test_commits_are_durable(pg_database):
    cluster, name = pg_database
    r = as_loket(cluster, name, "SELECT current_setting('fsync'), "
                 "current_setting('synchronous_commit'), current_setting('full_page_writes')")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "on|on|on", r.stdout


def test_daemon_config_names_the_runs_driver_and_a_database_per_data_dir(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    a, b = Loketd(tmp_path / "a"), Loketd(tmp_path / "b")
    if DRIVER == "sqlite":
        # The default driver: no [storage] section, data_dir/loket.db.
        assert "[storage]" not in a.config_text, a.config_text
        return
    names = [re.search(r"^conninfo = dbname=(\S+) ", d.config_text, re.M).group(1)
             for d in (a, b)]
    assert "\ndriver = pgsql\n" in a.config_text, a.config_text
    assert names[0] != names[1], names
    # Another daemon pointed at a's data_dir (a lock test does this) shares a's register.
    other = a.config(loketd_conf={"data_dir": a.data_dir})
    assert "dbname=%s " % names[0] in other, other


def alive(pid):
    """Whether pid runs (a zombie nobody reaped yet does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_stopped_cluster_leaves_nothing_running(pg_cluster):
    c = pg_fixture.Cluster().start()
    with open(os.path.join(c.data, "postmaster.pid")) as f:
        pid = int(f.readline())
    assert alive(pid)
    base, port = c.dir, c.port
    c.stop()
    assert not alive(pid), "the postmaster %d still runs after stop" % pid
    assert not os.path.exists(base), os.listdir(base)
    assert listening(port) == []
