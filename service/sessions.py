"""The dashboard's login: server-side sessions and throttled failures.

A login creates a random session id (the cookie), unrelated to the key; the server keeps, for
each id, a file naming a hash of the key it was opened with and when it expires, under
`CXNLP_JOBS_DIR/.sessions`, so every worker process of the service sees it. Logout deletes it; an
expired one is refused and deleted; a session of a key no longer configured is refused.

Failed logins are counted per client address: after `max_failures` within `window_s` seconds,
further attempts get 429 with Retry-After until the window has passed (a success clears the
count).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

SESSIONS_DIR = ".sessions"


def key_hash(key: str | bytes) -> str:
    data = key if isinstance(key, bytes) else key.encode("utf-8")
    return hashlib.sha256(b"cxnlp-session-key\x00" + data).hexdigest()


class Sessions:
    """Sessions as files named by a hash of their id (the id itself is never on disk)."""

    def __init__(self, folder: Path, lifetime_s: float) -> None:
        self.folder, self.lifetime_s = Path(folder), lifetime_s

    def _path(self, session_id: str) -> Path:
        return self.folder / hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()

    def create(self, key: str) -> str:
        """A new session for `key`; returns its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(session_id)
        tmp = path.with_suffix(".tmp")
        record = {"key": key_hash(key), "expires": time.time() + self.lifetime_s}
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(path)
        return session_id

    def key_of(self, session_id: str) -> str | None:
        """The key hash of a live session, or None (unknown, revoked or expired)."""
        if not session_id or len(session_id) > 200:
            return None
        path = self._path(session_id)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("expires", 0) < time.time():
            path.unlink(missing_ok=True)
            return None
        return record.get("key")

    def revoke(self, session_id: str | None) -> None:
        if session_id:
            self._path(session_id).unlink(missing_ok=True)


class LoginThrottle:
    """Failed logins per client within a sliding window (in this process)."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0, clients: int = 10_000):
        self.max_failures, self.window_s, self.clients = max_failures, window_s, clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds this client must wait before its next attempt, or None when it may try."""
        now = time.monotonic()
        with self._lock:
            times = self._failures.get(client)
            if times is None:
                return None
            while times and now - times[0] > self.window_s:
                times.popleft()
            if len(times) < self.max_failures:
                return None
            return max(1, int(self.window_s - (now - times[0])) + 1)

    def failed(self, client: str) -> None:
        with self._lock:
            times = self._failures.pop(client, None) or deque()
            times.append(time.monotonic())
            self._failures[client] = times  # most recent last
            while len(self._failures) > self.clients:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
