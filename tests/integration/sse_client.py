"""A server-sent events client on a raw socket (standard library only): what a browser's
EventSource does, read the way a test needs it: frames with their id, event and data, the
comments (keep-alives) counted, the end of the stream noticed."""

import json
import socket
import time


class Stream:
    """GET path with headers; status, headers, then frames as they come."""

    def __init__(self, host, port, path="/api/v1/events", token=None, headers=None,
                 timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        h = {"Host": "%s:%d" % (host, port), "Accept": "text/event-stream"}
        if token is not None:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        req = "GET %s HTTP/1.1\r\n%s\r\n" % (
            path, "".join("%s: %s\r\n" % kv for kv in h.items()))
        self.sock.sendall(req.encode())
        self.raw = b""
        self.body = b""   # the de-chunked body so far
        self.frames = []  # complete frames not yet taken: dicts {id, event, data, raw}
        self.comments = []
        self.closed = False
        self.chunked = False
        self._pending = b""  # body text not yet a whole frame
        self._read_head()

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0 or self.closed:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.raw += data
        return True

    def _read_head(self):
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in self.raw:
            if not self._recv(deadline):
                raise AssertionError("no response head; got %r" % self.raw)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            while len(self.raw) < n and self._recv(deadline):
                pass
            self.problem = json.loads(self.raw[:n]) if n else None
        self._dechunk()

    def _dechunk(self):
        if not self.chunked:
            self.body += self.raw
            self._pending += self.raw
            self.raw = b""
        else:
            while True:
                if b"\r\n" not in self.raw:
                    break
                size_line, rest = self.raw.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    self.closed = True
                    self.raw = b""
                    break
                if len(rest) < size + 2:
                    break
                self.body += rest[:size]
                self._pending += rest[:size]
                self.raw = rest[size + 2:]
        while b"\n\n" in self._pending:
            block, self._pending = self._pending.split(b"\n\n", 1)
            frame = {"id": None, "event": "message", "data": None, "raw": block.decode()}
            data = []
            only_comments = True
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                only_comments = False
                k, _, v = line.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "data":
                    data.append(v)
                elif k in ("id", "event", "retry"):
                    frame[k] = v
            if only_comments or (not data and frame["event"] == "message"):
                continue
            frame["data"] = json.loads("\n".join(data)) if data else None
            self.frames.append(frame)

    def pump(self, seconds):
        """Reads whatever arrives within seconds."""
        deadline = time.monotonic() + seconds
        while self._recv(deadline):
            self._dechunk()

    def wait(self, pred, timeout=5):
        """Reads until pred(self) is true or timeout; returns pred's last value."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred(self)
            if v or time.monotonic() >= deadline:
                return v
            if self._recv(deadline):
                self._dechunk()
            elif self.closed:
                return pred(self)

    def events(self, kind=None):
        return [f for f in self.frames if kind is None or f["event"] == kind]

    def wait_event(self, pred, timeout=5):
        """The first frame satisfying pred, reading until it comes; None on timeout."""
        def find(s):
            for f in s.frames:
                if pred(f):
                    return f
            return None
        return self.wait(find, timeout)

    def wait_closed(self, timeout=5):
        return self.wait(lambda s: s.closed, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
