"""benchlib.py: what bench/intake and bench/history share: finding the build, building the C
helpers, running loketd in a temp dir, running wrk and reading its numbers, perf, printing.

Standard library only. Every server listens on 127.0.0.1 and is stopped by the bench itself.
"""

import calendar
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCHDIR = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(BENCHDIR)
WRK = os.environ.get("WRK", "wrk")


def die(msg):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(2)


def note(msg):
    print("# " + msg, flush=True)


# build --------------------------------------------------------------------------------------

def find_builddir(arg=None):
    """The build tree holding core/loketd: arg, else in-tree or build/default (the newer)."""
    if arg:
        d = os.path.abspath(arg)
        if not os.access(os.path.join(d, "core", "loketd"), os.X_OK):
            die("%s/core/loketd is not built; build loket first (scripts/run, or make)" % d)
        return d
    found = []
    for d in (SRCDIR, os.path.join(SRCDIR, "build", "default")):
        exe = os.path.join(d, "core", "loketd")
        if os.access(exe, os.X_OK):
            found.append((os.stat(exe).st_mtime, d))
    if not found:
        die("no core/loketd in %s or %s/build/default; build loket first "
            "(scripts/run --no-install, or ./configure && make), or pass BUILDDIR"
            % (SRCDIR, SRCDIR))
    return max(found)[1]


def srcdir_of(builddir):
    """The source tree builddir was configured from (abs_top_srcdir in its Makefile), so that
    a bench of another build reads that build's rules and example files; else this tree."""
    try:
        with open(os.path.join(builddir, "Makefile")) as f:
            for line in f:
                if line.startswith("abs_top_srcdir = "):
                    d = line.split("=", 1)[1].strip()
                    if os.path.isdir(d):
                        return d
    except OSError:
        pass
    return SRCDIR


def build_helpers(builddir):
    """Builds the C helpers with bench/Makefile into BUILDDIR/bench/bin; returns that dir."""
    out = os.path.join(builddir, "bench", "bin")
    r = subprocess.run(["make", "-s", "-C", BENCHDIR, "O=" + out], capture_output=True,
                       text=True)
    if r.returncode != 0:
        die("building the bench helpers failed:\n" + r.stdout + r.stderr)
    return out


def loketd_version(builddir):
    r = subprocess.run([os.path.join(builddir, "core", "loketd"), "-V"], capture_output=True,
                       text=True)
    return r.stdout.strip() or "loketd ?"


def need_wrk():
    if shutil.which(WRK) is None:
        die("wrk is not installed (Debian: apt-get install wrk)")


# environment --------------------------------------------------------------------------------

def make_tmpdir(prefix):
    """A fresh temp dir on a real disk (BENCH_TMPDIR, default /var/tmp), not on tmpfs."""
    base = os.environ.get("BENCH_TMPDIR") or "/var/tmp"
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    os.chmod(d, 0o755)
    return d


def fs_type(path):
    r = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def fs_device(path):
    r = subprocess.run(["df", "--output=source", path], capture_output=True, text=True)
    lines = r.stdout.split()
    return lines[-1] if lines else "?"


def git_describe():
    r = subprocess.run(["git", "-C", SRCDIR, "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "?"


def machine_summary(tmpdir):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else "?"
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "tmpdir": tmpdir,
        "fs": "%s on %s" % (fs_type(tmpdir), fs_device(tmpdir)),
        "git": git_describe(),
    }


def print_machine(m):
    note("machine: %s cores (%s), Linux %s; data on %s (%s); loket %s"
         % (m["cores"], m["cpu"], m["kernel"], m["tmpdir"], m["fs"], m["git"]))
    if m["fs"].startswith("tmpfs") or m["fs"].startswith("ramfs"):
        note("WARNING: the temp dir is on %s: fsync costs nothing there, durable figures "
             "are meaningless; set BENCH_TMPDIR to a folder on a disk" % m["fs"])


# processes ----------------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None, timeout=10):
    """One request on a new connection: (status, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _healthz_once(port):
    """A minimal GET /healthz over a raw socket: True on a 200, None when not answering yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
            return True if data.startswith(b"HTTP/1.1 200") else None
    except OSError:
        return None


def rss_kib(pid):
    """(VmRSS, VmHWM) of pid in KiB, from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


class Loketd:
    """One loketd in dir/: its config, data_dir, empty plugin_dir and log."""

    def __init__(self, builddir, dir, log_level="info", durability="full", extra="",
                 prefix=None):
        self.loketd = os.path.join(builddir, "core", "loketd")
        self.prefix = list(prefix or [])  # e.g. a valgrind command line to run loketd under
        self.loketctl = os.path.join(builddir, "core", "loketctl")
        self.dir = dir
        self.data_dir = os.path.join(dir, "data")
        self.db_path = os.path.join(self.data_dir, "loket.db")
        self.conf_path = os.path.join(dir, "loket.conf")
        self.log_path = os.path.join(dir, "loketd.log")
        self.port = free_port()
        self.proc = None
        self._log = None
        plugin_dir = os.path.join(dir, "plugins")
        os.makedirs(plugin_dir, exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write("""; written by bench/benchlib.py
[loketd]
listen = 127.0.0.1:%d
data_dir = %s
plugin_dir = %s
plugins =
log_level = %s

[storage]
driver = sqlite
durability = %s

[organisation.gemeente]
name = Gemeente Voorbeeld

[organisation.ocmw]
name = OCMW Voorbeeld

[department.burgerzaken]
name = Burgerzaken
organisation = gemeente

[department.omgeving]
name = Omgeving
organisation = gemeente

[department.sociale_dienst]
name = Sociale dienst
organisation = ocmw
""" % (self.port, self.data_dir, plugin_dir, log_level, durability))
            f.write(extra)

    def start(self, timeout=60):
        """Starts loketd and waits for /healthz; returns seconds from exec to the first 200."""
        assert self.proc is None
        self._log = open(self.log_path, "ab")
        self._log_start = self._log.tell()
        t0 = time.monotonic()
        self.wall_start = time.time()
        self.proc = subprocess.Popen(self.prefix + [self.loketd, "-c", self.conf_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, cwd=self.dir)
        while True:
            if self.proc.poll() is not None:
                die("loketd exited with %s while starting; log %s:\n%s"
                    % (self.proc.returncode, self.log_path, self.log()[-3000:]))
            if _healthz_once(self.port):
                self.up_seconds = time.monotonic() - t0
                return self.up_seconds
            if time.monotonic() - t0 > timeout:
                self.kill()
                die("loketd did not answer /healthz within %ds; log:\n%s"
                    % (timeout, self.log()[-3000:]))
            time.sleep(0.001)

    def ready_seconds(self):
        """Seconds from exec to the 'ready' log line's timestamp (ms resolution), or None."""
        m = re.search(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z info loketd ready",
                      self.log()[self._log_start:], re.M)
        if not m:
            return None
        ts = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
        return ts + int(m.group(2)) / 1000.0 - self.wall_start

    def token(self, name, role):
        r = subprocess.run([self.loketctl, "-c", self.conf_path, "token", "add", name, role],
                           capture_output=True, text=True, timeout=30)
        m = re.search(r"\blkt_[A-Za-z0-9_\-]+", r.stdout)
        if r.returncode != 0 or not m:
            die("loketctl token add %s %s failed (rc %d):\n%s%s"
                % (name, role, r.returncode, r.stdout, r.stderr))
        return m.group(0)

    def rss(self):
        return rss_kib(self.proc.pid)

    def check_alive(self, what):
        """Dies with the log's tail when loketd exited or began to stop during `what`."""
        log = self.log()[self._log_start:]
        if self.proc.poll() is not None or re.search(r" info loketd stopping", log):
            tail = "\n".join(l for l in log.splitlines()[-400:]
                             if "contact registered" not in l)[-2000:]
            die("loketd stopped during %s (exit code %s). Nothing in the bench signals it "
                "before the end: another process did (a concurrent test run killing "
                "loketd processes?). Run again on a quiet machine. Log tail:\n%s"
                % (what, self.proc.poll(), tail))

    def metrics(self, token):
        """Prometheus samples of /metrics as {name{labels}: value}; {} when not allowed."""
        status, body = request(self.port, "GET", "/metrics",
                               headers={"Authorization": "Bearer " + token})
        out = {}
        if status != 200:
            return out
        for line in body.decode("utf-8", "replace").splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code (kill -9 after timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("latin-1")
        except FileNotFoundError:
            return ""


class Child:
    """A helper server (bare_http) that prints "listening port=N" when ready."""

    def __init__(self, argv, log_path):
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"port=(\d+)", line)
        if not m:
            self.stop()
            die("%s did not start: %r" % (argv[0], line))
        self.port = int(m.group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# CPU accounting -----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid):
    """CPU seconds (user + system, all threads) of pid so far."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _main_thread_cpu(pid):
    """CPU seconds of pid's first thread (for loketd: the event loop)."""
    try:
        with open("/proc/%d/task/%d/stat" % (pid, pid)) as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _machine_busy():
    """CPU seconds the whole machine was busy so far (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / _TICK


def _kthreads_cpu():
    """{pid: CPU seconds so far} of the kernel's own threads (I/O completion, journal, ...)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[6]) & 0x00200000:  # PF_KTHREAD
            out[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def _kthreads_delta(before, after):
    # kworkers come and go: count only what each thread used in the window
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class CpuMeter:
    """Where the CPU went during a run: the server, our child processes (wrk), everyone else."""

    def __init__(self, server_pid=None):
        self.pid = server_pid
        self.t0 = time.monotonic()
        self.busy0 = _machine_busy()
        self.srv0 = _proc_cpu(server_pid) if server_pid else 0.0
        self.main0 = _main_thread_cpu(server_pid) if server_pid else 0.0
        self.kids0 = _children_cpu()
        self.kern0 = _kthreads_cpu()

    def stop(self):
        wall = time.monotonic() - self.t0
        busy = _machine_busy() - self.busy0
        srv = (_proc_cpu(self.pid) - self.srv0) if self.pid else 0.0
        main = (_main_thread_cpu(self.pid) - self.main0) if self.pid else 0.0
        kids = _children_cpu() - self.kids0
        kern = _kthreads_delta(self.kern0, _kthreads_cpu())
        foreign = max(0.0, busy - srv - kids - kern)
        out = {"server_cores": srv / wall, "client_cores": kids / wall,
               "kernel_cores": kern / wall, "other_cores": foreign / wall,
               "busy_cores": busy / wall, "server_main_cores": main / wall,
               "server_threads_cores": (srv - main) / wall}
        if out["other_cores"] > 0.15:
            note("WARNING: other processes used %.2f cores during this run (of %d); the "
                 "figures of this run are skewed" % (out["other_cores"], os.cpu_count()))
        return out


def wait_quiet(max_wait=180, threshold=0.25):
    """Waits (up to max_wait s) until the machine is nearly idle: other work skews every
    figure on a 2-core box. Returns the busy cores seen last."""
    t0 = time.monotonic()
    said = False
    quiet = 0
    while True:
        b0, w0 = _machine_busy(), time.monotonic()
        time.sleep(1.0)
        busy = (_machine_busy() - b0) / (time.monotonic() - w0)
        quiet = quiet + 1 if busy <= threshold else 0
        if quiet >= 3:
            return busy
        if quiet == 0 and time.monotonic() - t0 > max_wait:
            note("WARNING: the machine stayed busy (%.2f cores used by others); measuring "
                 "anyway, figures will be low" % busy)
            return busy
        if not said:
            note("waiting for the machine to be idle (%.2f cores busy now; up to %d s)"
                 % (busy, max_wait))
            said = True


# wrk ----------------------------------------------------------------------------------------

def run_wrk(port, script, script_args, threads, connections, duration, log_path, timeout="5s",
            extra_env=None, server_pid=None):
    """Runs wrk with a bench Lua script; returns the script's BENCH numbers plus req_per_s."""
    argv = [WRK, "-t%d" % threads, "-c%d" % connections, "-d%s" % duration, "--latency",
            "--timeout", timeout, "-s", os.path.join(BENCHDIR, script),
            "http://127.0.0.1:%d" % port, "--"] + [str(a) for a in script_args]
    env = dict(os.environ, BENCH_THREADS=str(threads), **(extra_env or {}))
    meter = CpuMeter(server_pid)
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        lines, done = [], 0
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "QUOTA":
                done += 1
                if done == threads:
                    proc.send_signal(signal.SIGINT)
        rc = proc.wait()
        err.seek(0)
        stderr = err.read()
    cpu = meter.stop()
    stdout = "".join(lines)
    with open(log_path, "a") as f:
        f.write("$ %s\n%s%s\n" % (" ".join(argv), stdout, stderr))
    m = re.search(r"^BENCH (.*)$", stdout, re.M)
    if rc != 0 or not m:
        die("wrk failed (rc %d):\n%s%s" % (rc, stdout, stderr))
    out = {}
    for kv in m.group(1).split():
        k, _, v = kv.partition("=")
        out[k] = float(v)
    out["errors"] = sum(out[k] for k in out if k.startswith("errors_"))
    out["req_per_s"] = out["requests"] / (out["duration_us"] / 1e6)
    out.update(cpu)
    return out


# perf ---------------------------------------------------------------------------------------

class Perf:
    """perf record -g on one pid while a run lasts; report() gives the top symbols."""

    def __init__(self, pid, out_dir, name):
        self.data = os.path.join(out_dir, name + ".perf.data")
        self.report_path = os.path.join(out_dir, name + ".perf.txt")
        self.proc = None
        if shutil.which("perf") is None:
            note("perf is not installed; no profile")
            return
        self.proc = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-g", "-p", str(pid),
                                      "-o", self.data], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def report(self, limit=25):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        r = subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--no-children",
                            "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.7"],
                           capture_output=True, text=True)
        with open(self.report_path, "w") as f:
            f.write(r.stdout)
        lines = [l for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")]
        return lines[:limit]


# output -------------------------------------------------------------------------------------

def ms(us):
    return us / 1000.0


def verdict(ok):
    return "ok" if ok else "MISSED"


def print_table(rows):
    """rows: (what, value, target or "", verdict or "")."""
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    for r in rows:
        print("%-*s  %*s  %-*s  %s" % (w0, r[0], w1, r[1], w2, r[2], r[3]))


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
