"""Disk cache of judge answers: one SQLite file, safe for threads and for parallel sweep jobs.

The key is a SHA-256 over everything that determines an answer (``cache_key``): the judge settings that reach the
server (base URL, model, temperature, max_tokens, json_mode), the template text, the prompt, the two responses in
their positions and the order. Secrets, concurrency, timeouts, retries, prices and the cache location are left
out, so changing them never invalidates the cache. The value is the raw answer text plus its token usage; verdicts
are re-parsed on every read. Only answers are stored: failed calls are not, so a re-run retries exactly those.
Each answer is committed as soon as it arrives, so an interrupted run loses nothing already judged.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

CACHE_FILE = "judgments.sqlite"


def cache_key(settings: dict[str, Any], template: str, prompt: str, response_a: str, response_b: str,
              order: str) -> str:
    payload = json.dumps(
        {"settings": settings, "template": template, "prompt": prompt, "response_a": response_a,
         "response_b": response_b, "order": order},
        sort_keys=True, ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class JudgmentCache:
    """key -> {"text", "prompt_tokens", "completion_tokens", "model", "created"}."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / CACHE_FILE
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False, isolation_level=None)
        with self._lock:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:  # e.g. a file system without shared memory: default journal works too
                pass
            self._conn.execute("CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM judgments WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(uniq), 500):
                chunk = uniq[i : i + 500]
                rows = self._conn.execute(
                    f"SELECT key, value FROM judgments WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                out.update((k, json.loads(v)) for k, v in rows)
        return out

    def put(self, key: str, value: dict) -> None:
        value = {**value, "created": value.get("created", time.time())}
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO judgments (key, value) VALUES (?, ?)",
                               (key, json.dumps(value, ensure_ascii=False)))

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
