"""systemd readiness: loketd tells the service manager READY, RELOADING and STOPPING.

A datagram socket stands in for systemd's notify socket, exactly as systemd passes it to a
Type=notify service: the path in $NOTIFY_SOCKET."""
import os
import signal
import socket

import pytest


def messages(sock, until):
    """Notify datagrams until one contains until; each datagram is a list of KEY=VALUE."""
    got = []
    while True:
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            pytest.fail("no %s from loketd; got %r" % (until, got))
        got.append(data)
        if until in data.split("\n"):
            return got


def test_ready_reloading_stopping(loketd, tmp_path, monkeypatch):
    path = os.path.join("/tmp", "loket-notify-%d.sock" % os.getpid())
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        d = loketd()
        # /healthz already answers: READY came with it.
        messages(sock, "READY=1")
        d.proc.send_signal(signal.SIGHUP)
        got = messages(sock, "READY=1")
        assert any("RELOADING=1" in m.split("\n") for m in got), got
        d.proc.send_signal(signal.SIGTERM)
        messages(sock, "STOPPING=1")
        assert d.proc.wait(10) == 0
    finally:
        sock.close()
        os.unlink(path)
