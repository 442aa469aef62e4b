"""A real Dovecot (IMAP + LMTP) and a real Postfix (SMTP) on 127.0.0.1, for the tests.

Use it from a test module with

    from mail_fixtures import mailserver  # noqa: F401

and take `mailserver` as an argument. It is session-scoped: one pair of servers for the
whole run, started in under a few seconds, stopped (no processes left) at the end.

Both servers are private instances, not the system services: their own config, ports,
base/queue/pid directories and logs live in a fresh directory under /tmp (not pytest's
tmp_path: that one is mode 0700 and the servers' unprivileged users must walk into it,
and Dovecot's unix socket paths must stay short). A system dovecot or postfix that the
package install may have started does not get in the way.

Users log in with their full address (one scheme for IMAP and LMTP): info@gemeente.test,
welzijn@ocmw.test, burger1@burger.test .. burger5@burger.test and bench@gemeente.test,
all with the password "secret". Names are lower-cased (auth_username_format = %Lu).
Mail is delivered as Postfix SMTP -> virtual_transport lmtp:inet:127.0.0.1:LMTPPORT ->
Dovecot LMTP -> maildir under DIR/mail/DOMAIN/NAME, owned by the `dovecot` user.

Needs the Debian packages dovecot-imapd dovecot-lmtpd postfix (scripts/install-deps
--test). Without them the tests are skipped, loudly, except under CI=true where the
fixture fails. Runs as root (Postfix's master and Dovecot's master must be root).
LOKET_KEEP_MAIL_DIR=1 keeps the directory (configs, maildirs, logs) after the run.

Gotchas, so nobody has to find them again:
- `postfix -c DIR` as root needs no alternate_config_directories in /etc/postfix/main.cf
  (that check is for non-root users); the system main.cf may even be missing ("No
  configuration" install). master.cf comes from /usr/share/postfix/master.cf.dist.
- Postfix refuses a queue directory inside its config directory (everything there must
  be root-owned), so config, queue and data directories are siblings.
- Postfix programs sleep until main.cf/master.cf are a second old: the files are dated
  back, which takes the start from ~2.5 s to ~0.3 s. `postfix start`'s check-warn (~1 s
  of permission checks) is skipped via the queue's quick-start file; check-fatal (which
  creates the queue directories) is run once before the first start.
- The daemons inherit stdout/stderr of the command that starts them: their output goes
  to a file, never a pipe (a pipe would not see EOF and subprocess would hang).
- Dovecot is stopped with SIGTERM to its master (what `dovecot stop` does, minus a
  polling loop that adds two seconds); stop takes about 1 s.
- Whole start-up: about 0.5 s (Dovecot 0.05 s, Postfix 0.4 s).
"""

import imaplib
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import free_port, wait_for

PASSWORD = "secret"
USERS = ["info@gemeente.test", "welzijn@ocmw.test"] + \
        ["burger%d@burger.test" % i for i in range(1, 6)] + ["bench@gemeente.test"]
DOMAINS = ["gemeente.test", "ocmw.test", "burger.test"]

START_TIMEOUT = 20
STOP_TIMEOUT = 20
IO_TIMEOUT = 10

MISSING = "*** SKIPPED: install dovecot-imapd dovecot-lmtpd postfix ***"

# Our master.cf template: the package's pristine copy, else the system one (only read).
# Note: `postfix -c DIR` accepts a non-default DIR without alternate_config_directories in
# /etc/postfix/main.cf because we run as root (that check is for other users), so the
# system Postfix config is never touched.
MASTER_CF_TEMPLATES = ["/usr/share/postfix/master.cf.dist", "/etc/postfix/master.cf"]


def _which(name):
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(no log %s: %s)" % (path, e)
    return "\n".join(text.splitlines()[-lines:])


def _greets(host, port, greeting):
    """Whether a server on host:port answers a new connection with greeting."""
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            return s.recv(200).startswith(greeting)
    except OSError:
        return False


def _port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie whose parent is gone is reaped by init; treat "Z" as dead.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _children_of(pids):
    """All descendants of the given pids (from /proc), to check nothing was left behind."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    found, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p and c not in found:
                found.add(c)
                todo.append(c)
    return found


def _run(cmd, env=None, timeout=STOP_TIMEOUT):
    """Runs cmd; output goes through a file, not a pipe: the daemons it starts keep their
    inherited stdout/stderr open, and a pipe would never see EOF."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                           timeout=timeout)
        out.seek(0)
        p.stdout = out.read().decode("utf-8", "replace")
        p.stderr = ""
    return p


class MailServers:
    """A private Dovecot and Postfix in self.dir; see the module docstring.

    Attributes: imap_host, imap_port (plain, STARTTLS offered), imaps_port (TLS),
    submission_port (SMTP with STARTTLS and AUTH required, users as for IMAP), tls_cert
    (the self-signed certificate for "localhost", to trust), smtp_host, smtp_port,
    lmtp_port, password, users, dir, dovecot_conf, dovecot_log, postfix_dir.
    """

    def __init__(self, users=USERS, password=PASSWORD):
        self.dir = tempfile.mkdtemp(prefix="loket-mail-")
        os.chmod(self.dir, 0o755)
        self.users = list(users)
        self.password = password
        self.imap_host = self.smtp_host = "127.0.0.1"
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.lmtp_port = free_port()
        self.auth_port = free_port()
        self.submission_port = free_port()
        self.smtp_port = free_port()
        while len({self.imap_port, self.imaps_port, self.lmtp_port, self.smtp_port,
                   self.auth_port, self.submission_port}) < 6:
            self.smtp_port = free_port()
            self.lmtp_port = free_port()
            self.imaps_port = free_port()
            self.auth_port = free_port()
            self.submission_port = free_port()

        self.mail_dir = os.path.join(self.dir, "mail")
        self.dovecot_dir = os.path.join(self.dir, "dovecot")
        self.dovecot_base = os.path.join(self.dovecot_dir, "run")
        self.dovecot_conf = os.path.join(self.dovecot_dir, "dovecot.conf")
        self.dovecot_log = os.path.join(self.dir, "dovecot.log")
        # Postfix wants everything under its config directory owned by root, so the queue
        # and data directories (owned by the postfix user) live beside it, not inside.
        self.postfix_dir = os.path.join(self.dir, "postfix")
        self.postfix_queue = os.path.join(self.dir, "postfix-queue")
        self.postfix_data = os.path.join(self.dir, "postfix-data")
        self._postfix_started_once = False
        self.postfix_logfile = os.path.join(self.dir, "postfix.log")
        self._dovecot_pids = set()
        self._postfix_pids = set()
        self._write_dovecot()
        self._write_postfix()

    # names ---------------------------------------------------------------------------

    def address(self, user):
        """The full address (= login name) of user: "info" -> "info@gemeente.test"."""
        if "@" in user:
            return user.lower()
        for u in self.users:
            if u.split("@")[0] == user.lower():
                return u
        raise KeyError("no mail user %r (have %s)" % (user, ", ".join(self.users)))

    # dovecot ---------------------------------------------------------------------------

    def _write_dovecot(self):
        vmail = pwd.getpwnam("dovecot")
        for d in (self.dovecot_dir, self.dovecot_base, self.mail_dir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        os.chown(self.mail_dir, vmail.pw_uid, vmail.pw_gid)
        passwd = os.path.join(self.dovecot_dir, "passwd")
        with open(passwd, "w") as f:
            for u in self.users:
                f.write("%s:{PLAIN}%s\n" % (u.lower(), self.password))
        os.chmod(passwd, 0o644)
        # TLS for imaps and STARTTLS: a throwaway certificate for "localhost", which is
        # also the CA a client can be told to trust (tls_cert).
        self.tls_cert = os.path.join(self.dovecot_dir, "tls.crt")
        self.tls_key = os.path.join(self.dovecot_dir, "tls.key")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", self.tls_key, "-out", self.tls_cert, "-days", "2",
                            "-subj", "/CN=localhost", "-addext",
                            "subjectAltName=DNS:localhost"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl could not make the test certificate: " + r.stderr)
        conf = """\
# Written by tests/integration/mail_fixtures.py; a private instance for the tests.
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {base}
state_dir = {dir}/state
instance_name = loket-test-{imap_port}
log_path = {log}
info_log_path = {log}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Lu
auth_cache_size = 0
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{mail}/%d/%n
mail_home = {mail}/%d/%n
mail_uid = {uid}
mail_gid = {gid}
mail_fsync = never
default_process_limit = 1000
default_client_limit = 4000
default_vsz_limit = 512M
shutdown_clients = yes
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 1
  process_limit = 64
  client_limit = 1000
}}
service imap {{
  process_limit = 1000
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  process_limit = 200
}}
service auth {{
  client_limit = 4000
  # Postfix's submission port asks Dovecot who may send (SASL).
  inet_listener auth-postfix {{
    address = 127.0.0.1
    port = {auth_port}
  }}
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
protocol lmtp {{
  postmaster_address = postmaster@gemeente.test
}}
""".format(base=self.dovecot_base, dir=self.dovecot_dir, log=self.dovecot_log,
           uid=vmail.pw_uid, gid=vmail.pw_gid, mail=self.mail_dir, passwd=passwd,
           imap_port=self.imap_port, lmtp_port=self.lmtp_port, imaps_port=self.imaps_port,
           cert=self.tls_cert, key=self.tls_key, auth_port=self.auth_port)
        os.makedirs(os.path.join(self.dovecot_dir, "state"), exist_ok=True)
        with open(self.dovecot_conf, "w") as f:
            f.write(conf)

    def _dovecot_pid(self):
        return _read_pid(os.path.join(self.dovecot_base, "master.pid"))

    def dovecot_running(self):
        pid = self._dovecot_pid()
        return pid is not None and _pid_alive(pid)

    def start_dovecot(self):
        """Starts Dovecot and waits until IMAP greets and LMTP accepts connections."""
        if self.dovecot_running():
            return
        r = _run([_which("dovecot"), "-c", self.dovecot_conf], timeout=START_TIMEOUT)
        if r.returncode != 0:
            raise RuntimeError("dovecot -c %s failed (rc=%d): %s%s\nlog tail:\n%s" % (
                self.dovecot_conf, r.returncode, r.stdout, r.stderr, self.dovecot_log_tail()))
        up = wait_for(lambda: (_greets(self.imap_host, self.imap_port, b"* OK")
                               and _port_open("127.0.0.1", self.lmtp_port)),
                      START_TIMEOUT, interval=0.02)
        if not up:
            raise RuntimeError("dovecot did not answer on IMAP %d / LMTP %d within %ds; "
                               "log tail:\n%s" % (self.imap_port, self.lmtp_port,
                                                  START_TIMEOUT, self.dovecot_log_tail()))
        pid = self._dovecot_pid()
        if pid:
            self._dovecot_pids.add(pid)

    def stop_dovecot(self):
        """Stops Dovecot and waits until its master and all its children are gone."""
        pid = self._dovecot_pid()
        if pid is None or not _pid_alive(pid):
            return
        kids = _children_of([pid])
        # What `dovecot -c CONF stop` does, without its polling (it takes ~3 s, this ~1 s).
        os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: not _pid_alive(pid), STOP_TIMEOUT, interval=0.02):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not _pid_alive(pid), 5)
        for k in kids:
            wait_for(lambda: not _pid_alive(k), 5)
            if _pid_alive(k):
                os.kill(k, signal.SIGKILL)
        wait_for(lambda: not _port_open(self.imap_host, self.imap_port), 5)

    def restart_dovecot(self):
        self.stop_dovecot()
        self.start_dovecot()

    def dovecot_log_tail(self, lines=60):
        return _tail(self.dovecot_log, lines)

    # postfix ---------------------------------------------------------------------------

    def _postfix_env(self):
        env = dict(os.environ)
        env["MAIL_CONFIG"] = self.postfix_dir
        return env

    def _write_postfix(self):
        os.makedirs(self.postfix_dir)
        os.makedirs(self.postfix_queue)
        os.makedirs(self.postfix_data)
        os.chmod(self.postfix_dir, 0o755)
        os.chmod(self.postfix_queue, 0o755)
        pf = pwd.getpwnam("postfix")
        os.chown(self.postfix_data, pf.pw_uid, pf.pw_gid)
        main = """\
# Written by tests/integration/mail_fixtures.py; a private instance for the tests.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.gemeente.test
mydomain = gemeente.test
myorigin = gemeente.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost =
default_transport = error:nothing leaves this test machine
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
virtual_mailbox_domains = {domains}
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
smtputf8_enable = no
biff = no
append_dot_mydomain = no
readme_directory = no
maillog_file = {logfile}
maillog_file_prefixes = {dir}
smtpd_banner = $myhostname ESMTP loket-test
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
in_flow_delay = 0
message_size_limit = 52428800
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
lmtp_connect_timeout = 5s
delay_warning_time = 0
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth_port}
smtpd_sasl_auth_enable = no
""".format(queue=self.postfix_queue, data=self.postfix_data, dir=self.dir,
           domains=" ".join(DOMAINS), lmtp_port=self.lmtp_port, logfile=self.postfix_logfile,
           cert=self.tls_cert, key=self.tls_key, auth_port=self.auth_port)
        with open(os.path.join(self.postfix_dir, "main.cf"), "w") as f:
            f.write(main)
        # The system master.cf with our smtpd listener instead of port 25, and no chroot
        # (a chroot under our queue dir would lack /etc/services, resolv.conf, ...).
        out = []
        template = next((p for p in MASTER_CF_TEMPLATES if os.path.exists(p)),
                        MASTER_CF_TEMPLATES[0])
        with open(template) as f:
            for line in f:
                fields = line.split()
                if line[:1] not in ("#", " ", "\t", "\n") and len(fields) >= 8:
                    if fields[1] == "inet":
                        if fields[0] == "smtp":
                            out.append("127.0.0.1:%d inet n - n - - smtpd\n" % self.smtp_port)
                            # Submission as a provider runs it: STARTTLS, then AUTH, or
                            # nothing is accepted.
                            out.append("127.0.0.1:%d inet n - n - - smtpd"
                                       " -o smtpd_tls_security_level=encrypt"
                                       " -o smtpd_sasl_auth_enable=yes"
                                       " -o smtpd_client_restrictions="
                                       "permit_sasl_authenticated,reject"
                                       " -o smtpd_relay_restrictions="
                                       "permit_sasl_authenticated,reject\n"
                                       % self.submission_port)
                        continue  # no other network listeners (submission, ...)
                    fields[4] = "n"
                    line = " ".join(fields[:8]) + (" " + " ".join(fields[8:])
                                                   if len(fields) > 8 else "") + "\n"
                out.append(line)
        with open(os.path.join(self.postfix_dir, "master.cf"), "w") as f:
            f.writelines(out)
        # Postfix programs wait (in 300 ms steps) until a table file they load is at least
        # a second old, in case an editor is still writing it: that cost about 2 s per
        # start. Our files are complete, so date them back.
        past = time.time() - 60
        for name in ("main.cf", "master.cf"):
            os.utime(os.path.join(self.postfix_dir, name), (past, past))

    def _master_pid(self):
        return _read_pid(os.path.join(self.postfix_queue, "pid", "master.pid"))

    def postfix_running(self):
        pid = self._master_pid()
        return pid is not None and _pid_alive(pid)

    def start_postfix(self):
        """Starts Postfix (postfix -c DIR start) and waits until SMTP greets."""
        if self.postfix_running():
            return
        # `postfix start` runs postfix-script's check-fatal (creates the queue directories:
        # needed) and check-warn (permission warnings: over a second, and only useful on a
        # real installation). Run check-fatal ourselves, once, and let a quick-start file
        # make `postfix start` skip both.
        if not self._postfix_started_once:
            r = _run([_which("postfix"), "-c", self.postfix_dir, "check-fatal"],
                     env=self._postfix_env(), timeout=START_TIMEOUT)
            if r.returncode != 0:
                raise RuntimeError("postfix -c %s check-fatal failed (rc=%d): %s\n"
                                   "log tail:\n%s" % (self.postfix_dir, r.returncode,
                                                      r.stdout, self.postfix_log_tail()))
        open(os.path.join(self.postfix_queue, "quick-start"), "w").close()
        r = _run([_which("postfix"), "-c", self.postfix_dir, "start"],
                 env=self._postfix_env(), timeout=START_TIMEOUT)
        if r.returncode != 0:
            raise RuntimeError("postfix -c %s start failed (rc=%d): %s%s\nlog tail:\n%s" % (
                self.postfix_dir, r.returncode, r.stdout, r.stderr, self.postfix_log_tail()))
        if not wait_for(lambda: _greets(self.smtp_host, self.smtp_port, b"220"), START_TIMEOUT,
                        interval=0.02):
            raise RuntimeError("postfix did not greet on SMTP %d within %ds; log tail:\n%s" % (
                self.smtp_port, START_TIMEOUT, self.postfix_log_tail()))
        self._postfix_started_once = True
        pid = self._master_pid()
        if pid:
            self._postfix_pids.add(pid)

    def stop_postfix(self):
        """Stops Postfix and waits until its master and all its children are gone."""
        pid = self._master_pid()
        if pid is None or not _pid_alive(pid):
            return
        kids = _children_of([pid])
        _run([_which("postfix"), "-c", self.postfix_dir, "stop"], env=self._postfix_env())
        if not wait_for(lambda: not _pid_alive(pid), STOP_TIMEOUT, interval=0.02):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not _pid_alive(pid), 5)
        for k in kids:
            wait_for(lambda: not _pid_alive(k), 5)
            if _pid_alive(k):
                os.kill(k, signal.SIGKILL)
        wait_for(lambda: not _port_open(self.smtp_host, self.smtp_port), 5)

    def postfix_log(self):
        try:
            with open(self.postfix_logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def postfix_log_tail(self, lines=60):
        return _tail(self.postfix_logfile, lines)

    # both ------------------------------------------------------------------------------

    def start(self):
        self.start_dovecot()
        self.start_postfix()
        return self

    def stop(self):
        """Stops both; returns a list of problems (processes that had to be killed)."""
        problems = []
        for stop in (self.stop_postfix, self.stop_dovecot):
            try:
                stop()
            except Exception as e:  # keep going: the other server must stop too
                problems.append("%s: %s" % (stop.__name__, e))
        left = [p for p in _children_of(self._dovecot_pids | self._postfix_pids) if _pid_alive(p)]
        left += [p for p in self._dovecot_pids | self._postfix_pids if _pid_alive(p)]
        if left:
            problems.append("processes left running: %s" % left)
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        return problems

    def logs(self):
        return "--- dovecot log tail:\n%s\n--- postfix log tail:\n%s" % (
            self.dovecot_log_tail(), self.postfix_log_tail())

    # clients ---------------------------------------------------------------------------

    def imap(self, user, timeout=IO_TIMEOUT):
        """A logged-in imaplib.IMAP4 for user (the caller logs out)."""
        c = imaplib.IMAP4(self.imap_host, self.imap_port, timeout=timeout)
        try:
            c.login(self.address(user), self.password)
        except Exception:
            c.shutdown()
            raise
        return c

    def send(self, mail_from, rcpt_list, raw_bytes, timeout=IO_TIMEOUT):
        """Sends raw_bytes through Postfix SMTP; returns smtplib's refused-recipients dict."""
        if isinstance(rcpt_list, str):
            rcpt_list = [rcpt_list]
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=timeout) as s:
            return s.sendmail(mail_from, [self.address(r) for r in rcpt_list], raw_bytes)

    @staticmethod
    def _quote(folder):
        return '"%s"' % folder.replace("\\", "\\\\").replace('"', '\\"')

    def append(self, user, folder, raw_bytes, flags=None):
        """APPENDs raw_bytes to folder (created if missing); flags like "\\Seen" or a list."""
        if isinstance(flags, (list, tuple)):
            flags = " ".join(flags)
        c = self.imap(user)
        try:
            typ, _ = c.select(self._quote(folder), readonly=True)
            if typ != "OK":
                typ, data = c.create(self._quote(folder))
                assert typ == "OK", "CREATE %s: %r" % (folder, data)
            typ, data = c.append(self._quote(folder), "(%s)" % flags if flags else None,
                                 None, raw_bytes)
            assert typ == "OK", "APPEND to %s: %r" % (folder, data)
            return data
        finally:
            c.logout()

    def folders(self, user):
        """The names of user's folders (with "/" as the separator)."""
        c = self.imap(user)
        try:
            typ, data = c.list()
            assert typ == "OK", data
        finally:
            c.logout()
        out = []
        for line in data:
            if line is None:
                continue
            if isinstance(line, tuple):  # a literal name
                out.append(line[1].decode("utf-8", "replace"))
                continue
            m = re.match(rb'^\(.*?\) (?:"[^"]*"|NIL) (.*)$', line)
            name = m.group(1) if m else line
            if name.startswith(b'"') and name.endswith(b'"'):
                name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
            out.append(name.decode("utf-8", "replace"))
        return out

    def messages(self, user, folder="INBOX"):
        """[(uid, raw bytes, flags tuple)] of folder in UID order; [] if the folder is absent."""
        c = self.imap(user)
        try:
            typ, _ = c.select(self._quote(folder), readonly=True)
            if typ != "OK":
                return []
            typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            assert typ == "OK", data
        finally:
            c.logout()
        out = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, raw = item[0], item[1]
            uid = int(re.search(rb"UID (\d+)", meta).group(1))
            fm = re.search(rb"FLAGS \(([^)]*)\)", meta)
            flags = tuple(fm.group(1).decode().split()) if fm else ()
            out.append((uid, raw, flags))
        # FLAGS may come after the literal on its own line; fetch them separately then.
        if out and any(not f for _, _, f in out):
            out = self._with_flags(user, folder, out)
        return sorted(out)

    def _with_flags(self, user, folder, msgs):
        c = self.imap(user)
        try:
            c.select(self._quote(folder), readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
        finally:
            c.logout()
        flags = {}
        for line in data:
            if isinstance(line, bytes):
                m = re.search(rb"UID (\d+)", line)
                fm = re.search(rb"FLAGS \(([^)]*)\)", line)
                if m and fm:
                    flags[int(m.group(1))] = tuple(fm.group(1).decode().split())
        return [(uid, raw, flags.get(uid, ())) for uid, raw, _ in msgs]

    def wait_messages(self, user, folder="INBOX", count=1, timeout=30):
        """Polls until folder holds at least count messages; returns messages(user, folder)."""
        got = []

        def enough():
            got[:] = self.messages(user, folder)
            return len(got) >= count

        if not wait_for(enough, timeout, interval=0.1):
            raise AssertionError(
                "%s/%s has %d message(s), wanted %d within %ss\n%s" % (
                    user, folder, len(got), count, timeout, self.logs()))
        return list(got)

    def clear(self, user):
        """Deletes every message in every folder of user, and the folders except INBOX."""
        names = self.folders(user)
        c = self.imap(user)
        try:
            for name in names:
                typ, data = c.select(self._quote(name))
                if typ != "OK":
                    continue
                if int(data[0] or 0) > 0:
                    c.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                    c.expunge()
                c.close()
            for name in sorted(names, key=len, reverse=True):
                if name.upper() != "INBOX":
                    c.delete(self._quote(name))
        finally:
            c.logout()


def _binaries_missing():
    return [b for b in ("dovecot", "doveadm", "postfix", "postconf") if not _which(b)] + \
        [p for p in ("/usr/lib/dovecot/imap", "/usr/lib/dovecot/lmtp")
         if not os.path.exists(p)] + \
        (["master.cf"] if not any(os.path.exists(p) for p in MASTER_CF_TEMPLATES) else [])


@pytest.fixture(scope="session")
def mailserver():
    """A started MailServers (Dovecot IMAP+LMTP, Postfix SMTP) for the whole session.

    Teardown stops both servers and fails when any of their processes had to be killed.
    """
    missing = _binaries_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("mail servers missing under CI=true (%s): run scripts/install-deps "
                        "--test to install dovecot-imapd dovecot-lmtpd postfix"
                        % ", ".join(missing), pytrace=False)
        pytest.skip("%s (missing: %s)" % (MISSING, ", ".join(missing)))
    if os.geteuid() != 0:
        msg = "*** SKIPPED: the mail server fixtures need root (Postfix/Dovecot masters) ***"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)

    servers = MailServers()
    try:
        servers.start()
    except Exception as e:
        logs = servers.logs()
        servers.stop()
        shutil.rmtree(servers.dir, ignore_errors=True)
        pytest.fail("mail servers did not start: %s\n%s" % (e, logs), pytrace=False)
    yield servers
    problems = servers.stop()
    if not problems and os.environ.get("LOKET_KEEP_MAIL_DIR", "") == "":
        shutil.rmtree(servers.dir, ignore_errors=True)
    assert not problems, "mail servers teardown: %s\n%s" % ("; ".join(problems), servers.logs())
