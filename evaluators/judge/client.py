"""One chat-completions call with our own retries, over the ``openai`` client (any OpenAI-compatible server).

The openai client's built-in retries are switched off (``max_retries=0``) and done here instead, so every retry is
counted, logged and testable: exponential backoff with jitter (honouring ``Retry-After``) on rate limits (429),
server errors (5xx, 408, 409), timeouts, connection errors and malformed responses. Other client errors (400, 401,
403, 404, 422) are not retried. A call that still fails returns an error instead of raising: the evaluator counts
it as missing.

The API key is read from the environment variable named in the config when the client is built (at evaluation
time), handed to the openai client and kept nowhere else; every error text that leaves this module is redacted.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 429}
NO_KEY_PLACEHOLDER = "no-key"  # local servers (llm-katan, vLLM, llama.cpp) want some Authorization header


@dataclass
class CallResult:
    text: str | None  # the answer, or None when the call failed for good
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    error_kind: str | None = None  # rate_limit | server | timeout | connection | bad_response | client_error | error
    error: str | None = None  # redacted, truncated


@dataclass
class CallStats:
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    failed_calls: int = 0  # judgments that failed after all retries
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: Counter = field(default_factory=Counter)  # error kind -> count of failed attempts
    latencies: list = field(default_factory=list)  # seconds per successful request


def is_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_url(url: str) -> str:
    """The URL without any user:password part, for logs."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url


_KEYLIKE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-\*\.]{3,}|(?i:bearer)\s+\S+")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove secrets and anything shaped like an API key (OpenAI echoes masked keys in 401 messages)."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return _KEYLIKE.sub("***", text)


class JudgeClient:
    def __init__(self, *, base_url: str, model: str, api_key_env: str, timeout: float, max_retries: int,
                 backoff_base: float, backoff_max: float, max_tokens: int, temperature: float, json_mode: bool):
        import openai

        self._openai = openai
        self.base_url, self.model = base_url, model
        self.max_retries, self.backoff_base, self.backoff_max = int(max_retries), float(backoff_base), float(backoff_max)
        self.max_tokens, self.temperature, self.json_mode = int(max_tokens), float(temperature), bool(json_mode)
        key = os.environ.get(api_key_env) if api_key_env else None
        if not key:
            if not is_loopback(base_url):
                raise RuntimeError(
                    f"llm_judge: the environment variable {api_key_env!r} (api_key_env) is not set; it must hold the "
                    f"API key for {safe_url(base_url)}"
                )
            key = NO_KEY_PLACEHOLDER
        self._secrets = (key,)
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=float(timeout), max_retries=0)
        self.stats = CallStats()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"JudgeClient(base_url={safe_url(self.base_url)!r}, model={self.model!r})"

    def close(self) -> None:
        self._client.close()

    # -- one judgment -------------------------------------------------------------------------------------------
    def complete(self, messages: list[dict[str, str]]) -> CallResult:
        kwargs = dict(model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=self.temperature)
        if self.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        last: CallResult | None = None
        retry_after: float | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = self._backoff(attempt, retry_after)
                with self._lock:
                    self.stats.retries += 1
                log.info("llm_judge: retry %d/%d in %.2fs after %s: %s", attempt, self.max_retries, delay,
                         last.error_kind, last.error)
                time.sleep(delay)
            with self._lock:
                self.stats.requests += 1
            t0 = time.perf_counter()
            result, retryable, retry_after = self._attempt(kwargs)
            result.attempts = attempt + 1
            if result.error_kind is None:
                with self._lock:
                    self.stats.latencies.append(time.perf_counter() - t0)
                    self.stats.prompt_tokens += result.prompt_tokens
                    self.stats.completion_tokens += result.completion_tokens
                return result
            with self._lock:
                self.stats.errors[result.error_kind] += 1
            last = result
            if not retryable:
                break
        with self._lock:
            self.stats.failed_calls += 1
        log.warning("llm_judge: call failed after %d attempt(s): %s: %s", last.attempts, last.error_kind, last.error)
        return last

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """base * 2^(attempt-1) with +-25% jitter, at least the server's Retry-After, at most backoff_max."""
        delay = self.backoff_base * 2 ** (attempt - 1) * (0.75 + 0.5 * random.random())
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.backoff_max)

    def _attempt(self, kwargs: dict) -> tuple[CallResult, bool, float | None]:
        """(result, retryable, retry-after seconds). Never raises."""
        oa = self._openai
        try:
            resp = self._client.chat.completions.create(**kwargs)
        except oa.APITimeoutError as e:  # subclass of APIConnectionError: check first
            return self._fail("timeout", e), True, None
        except oa.APIConnectionError as e:
            return self._fail("connection", e), True, None
        except oa.APIStatusError as e:
            status = getattr(e, "status_code", None) or 0
            retry_after = _retry_after(e)
            if status == 429:
                return self._fail("rate_limit", e), True, retry_after
            if status >= 500 or status in RETRYABLE_STATUS:
                return self._fail("server", e), True, retry_after
            return self._fail("client_error", e), False, None
        except (oa.APIResponseValidationError, ValueError, TypeError, KeyError, AttributeError) as e:
            return self._fail("bad_response", e), True, None
        except Exception as e:  # noqa: BLE001 - a judge call must never crash an evaluation
            return self._fail("error", e), False, None
        try:
            text = resp.choices[0].message.content
            usage = getattr(resp, "usage", None)
            pt = int(getattr(usage, "prompt_tokens", 0) or 0)
            ct = int(getattr(usage, "completion_tokens", 0) or 0)
        except Exception as e:  # noqa: BLE001 - a 200 with a body that is not a chat completion
            return self._fail("bad_response", e), True, None
        if not isinstance(text, str):
            return self._fail("bad_response", TypeError(f"answer content is {type(text).__name__}")), True, None
        return CallResult(text=text, prompt_tokens=pt, completion_tokens=ct), False, None

    def _fail(self, kind: str, exc: BaseException) -> CallResult:
        msg = redact(f"{type(exc).__name__}: {exc}", self._secrets)
        return CallResult(text=None, error_kind=kind, error=msg[:300])


def _retry_after(exc) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except Exception:  # noqa: BLE001 - an HTTP date or garbage: fall back to our backoff
        return None
