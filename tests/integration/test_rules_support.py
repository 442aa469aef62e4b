"""Shared helpers of the rules tests (test_rules.py, test_rules_sandbox.py); no tests here.

A loketd whose config names a rules folder, the catalogue and the organisations and
departments of etc/loket.conf.example (calendars pointed at the source tree), plus a small
JSON client with tokens made by `loketctl token add`.
"""

import datetime
import json
import os
import re
import socket
import time
import zoneinfo

from conftest import SLOW, SRCDIR, wait_for

ETC = os.path.join(SRCDIR, "etc")
CATALOGUE = os.path.join(ETC, "catalogue.csv")
DEFAULT_RULES = os.path.join(SRCDIR, "scripts", "rules")
RULES_TESTS = os.path.join(SRCDIR, "tests", "rules")
HOSTILE_DIR = os.path.join(RULES_TESTS, "hostile")
SANDBOX_DIR = os.path.join(RULES_TESTS, "sandbox")
TOKEN = re.compile(r"lkt_[A-Za-z0-9_-]+")
BRUSSELS = zoneinfo.ZoneInfo("Europe/Brussels")


def example_units(calendars=True):
    """The [organisation.*] and [department.*] sections of etc/loket.conf.example, as config
    text; calendar paths point at etc/ of the source tree (or are left out)."""
    with open(os.path.join(ETC, "loket.conf.example")) as f:
        text = f.read()
    out, keep = [], False
    for line in text.splitlines():
        m = re.match(r"^\[([^\]]+)\]", line)
        if m:
            keep = m.group(1).startswith(("organisation.", "department."))
            if keep:
                out.append(line)
            continue
        if not keep or not re.match(r"^[a-z_]+\s*=", line):
            continue
        key, value = [s.strip() for s in line.split("=", 1)]
        if key == "calendar":
            if not calendars:
                continue
            value = os.path.join(ETC, os.path.basename(value))
        out.append("%s = %s" % (key, value))
    assert any(l.startswith("[department.") for l in out), "no departments in the example"
    return "\n".join(out) + "\n"


def always_open_units(tmp_path):
    """gemeente with its burgerzaken on a calendar open day and night, every day (written
    under tmp_path), so that durations in open time are plain time."""
    cal = tmp_path / "always-open.conf"
    cal.write_text("".join("%s = 00:00-24:00\n" % day for day in (
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")) +
        "holidays = none\n")
    return ("[organisation.gemeente]\nname = Gemeente Voorbeeld\ncalendar = %s\n"
            "[department.burgerzaken]\norganisation = gemeente\n" % cal)


def rules_section(rules_dir, catalogue=CATALOGUE, **keys):
    """A [rules] section: dir, catalogue and any of instructions, timeout, memory."""
    lines = ["[rules]", "dir = %s" % rules_dir]
    if catalogue:
        lines.append("catalogue = %s" % catalogue)
    for k, v in keys.items():
        lines.append("%s = %s" % (k, v))
    return "\n".join(lines) + "\n"


class Client:
    """JSON over the daemon's HTTP API with tokens from `loketctl token add`."""

    def __init__(self, d):
        self.d = d
        self._tokens = {}

    def token(self, name, role):
        if name not in self._tokens:
            r = self.d.ctl("token", "add", name, role)
            assert r.returncode == 0, "loketctl token add %s %s failed: %s %s\n%s" % (
                name, role, r.stdout, r.stderr, self.d.log())
            m = TOKEN.search(r.stdout)
            assert m, "loketctl token add printed no token: %r" % r.stdout
            self._tokens[name] = m.group(0)
        return self._tokens[name]

    @property
    def admin(self):
        return self.token("rules-admin", "admin")

    @property
    def agent(self):
        return self.token("rules-agent", "agent")

    def call(self, method, path, body=None, token=None, timeout=5 * SLOW):
        """(status, decoded JSON or None, seconds taken); raises socket.timeout on timeout."""
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        t0 = time.monotonic()
        status, _, raw = self.d.request(method, path, body=data, headers=headers,
                                        timeout=timeout)
        took = time.monotonic() - t0
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return status, doc, took, raw

    def post_contact(self, timeout=5 * SLOW, **fields):
        """POST /api/v1/contacts as the agent; (status, doc, seconds)."""
        fields.setdefault("channel", "phone")
        status, doc, took, _ = self.call("POST", "/api/v1/contacts", fields, token=self.agent,
                                         timeout=timeout)
        return status, doc, took

    def create(self, **fields):
        status, doc, _ = self.post_contact(**fields)
        assert status == 201, "POST /api/v1/contacts: %d %r\n%s" % (status, doc, self.d.log())
        return doc

    def contact(self, cid):
        status, doc, _, raw = self.call("GET", "/api/v1/contacts/%s" % cid, token=self.admin)
        assert status == 200, "GET contact %s: %d %r" % (cid, status, raw[:300])
        return doc

    def action(self, cid, verb, body=None):
        status, doc, _, raw = self.call("POST", "/api/v1/contacts/%s/%s" % (cid, verb),
                                        body or {}, token=self.admin)
        # docs/api.md: 200 with the contact in its new status
        assert status == 200, "POST %s on contact %s: %d %r" % (verb, cid, status, raw[:300])
        assert doc["id"] == int(cid) and "history" in doc and "tasks" in doc, raw[:300]
        return doc

    def metrics(self):
        status, _, _, raw = self.call("GET", "/metrics", token=self.admin)
        assert status == 200, "GET /metrics: %d %r" % (status, raw[:300])
        return raw.decode()

    def healthz(self):
        status, _, _, _ = self.call("GET", "/healthz")
        return status


def rule_runs(metrics_text, rule, result):
    """The value of loket_rule_runs_total{rule=..., result=...}, or None when absent."""
    rx = re.compile(r'^loket_rule_runs_total\{rule="%s",result="%s"\} (\S+)$'
                    % (re.escape(rule), re.escape(result)), re.M)
    m = rx.search(metrics_text)
    return float(m.group(1)) if m else None


def history_of(contact, action=None, actor_prefix=None):
    return [h for h in contact.get("history") or []
            if (action is None or h["action"] == action)
            and (actor_prefix is None or h["actor"].startswith(actor_prefix))]


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


# Calendars ------------------------------------------------------------------------------

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _easter(year):
    """Gregorian Easter Sunday (anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l) // 451
    month = (h + l - 7 * m + 114) // 31
    day = (h + l - 7 * m + 114) % 31 + 1
    return datetime.date(year, month, day)


def belgian_holidays(year):
    e = _easter(year)
    one = datetime.timedelta(days=1)
    return {datetime.date(year, 1, 1), e + one, datetime.date(year, 5, 1), e + 39 * one,
            e + 50 * one, datetime.date(year, 7, 21), datetime.date(year, 8, 15),
            datetime.date(year, 11, 1), datetime.date(year, 11, 11),
            datetime.date(year, 12, 25)}


class Calendar:
    """Reads a calendar file (the format of etc/calendar-gemeente.conf) to check moments."""

    def __init__(self, path):
        self.periods = {d: [] for d in DAYS}
        self.holidays = "belgium"
        self.closed_yearly, self.closed_once = set(), set()
        logical, cur = [], None
        with open(path) as f:
            for raw in f:
                line = raw.rstrip("\n")
                if not line.strip() or line.lstrip().startswith((";", "#")):
                    continue
                line = re.sub(r"\s;.*$", "", line)
                if line[0].isspace() and cur is not None:
                    logical[-1] = (logical[-1][0], logical[-1][1] + " " + line.strip())
                    continue
                key, value = [s.strip() for s in line.split("=", 1)]
                logical.append((key, value))
                cur = key
        for key, value in logical:
            if key in DAYS:
                if value != "closed":
                    for p in value.split(","):
                        a, b = p.strip().split("-")
                        self.periods[key].append((a, b))
            elif key == "holidays":
                self.holidays = value
            elif key == "closed":
                for item in [s.strip() for s in value.split(",") if s.strip()]:
                    if len(item) == 5:
                        self.closed_yearly.add(item)
                    else:
                        self.closed_once.add(item)

    def day_closed(self, day):
        if day.isoformat() in self.closed_once or day.strftime("%m-%d") in self.closed_yearly:
            return True
        return self.holidays == "belgium" and day in belgian_holidays(day.year)

    def within_open_hours(self, moment):
        """True when moment (aware datetime) lies in an open period, its closing time included
        (a deadline that runs out at a closing time is that closing time)."""
        local = moment.astimezone(BRUSSELS)
        day = local.date()
        if self.day_closed(day):
            return False
        hhmm = local.strftime("%H:%M:%S")
        for a, b in self.periods[DAYS[local.weekday()]]:
            if a + ":00" <= hhmm <= (b + ":00" if b != "24:00" else "24:00:00"):
                return True
        return False


def wait_until(fn, timeout, interval=0.1):
    return wait_for(fn, timeout, interval)


def is_timeout(exc):
    return isinstance(exc, (socket.timeout, TimeoutError))
