"""LLM judge: pairwise policy-vs-reference judgments from any OpenAI-compatible chat-completions server.

Each (prompt, policy response, reference response) is judged twice, with the policy's response first (as A) and
second (as B). Both verdicts are mapped back to policy / reference / tie; when the two orders disagree the pair
is a tie and counts toward the position-disagreement rate. A pair whose call failed after all retries is
*missing*, one whose answer names no winner is *unparseable*; both are reported, never silently dropped from the
denominator (``judge_n_pairs = judge_n_judged + judge_n_missing + judge_n_unparseable``).

Pieces (``evaluators/judge/``): ``prompt`` renders the template with every value escaped inside its own tags,
``parse`` reads verdicts (JSON when ``json_mode``, a tolerant parser for anything else), ``cache`` stores raw
answers in SQLite keyed by everything that determines them, ``client`` makes the call with counted retries.

Use::

    export OPENAI_API_KEY=...            # or any variable, named by api_key_env
    python bench/run.py evaluator=[llm_judge] evaluator.llm_judge.dry_run=true    # calls + cost, no calls
    PREFNOISE_JUDGE_BASE_URL=http://127.0.0.1:8000/v1 ... evaluator.llm_judge.model=judge   # a local server

    from evaluators import get, EvalBatch
    get("llm_judge", base_url=..., model=...).evaluate(EvalBatch(prompts, policy, reference, task="world"))
"""
from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from bench.core.cache import user_cache_dir
from bench.core.metrics import COUNTER, HIGHER, NO_DIRECTION
from bench.core.options import COUNT, NONNEGATIVE, POSITIVE, ConfigError, Param, option
from evaluators import EvalBatch, Evaluator
from evaluators.judge.cache import JudgmentCache, cache_key
from evaluators.judge.client import JudgeClient, safe_url
from evaluators.judge.parse import parse_verdict
from evaluators.judge.prompt import load_template, render, template_for_task

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
ORDERS = ("policy_first", "reference_first")  # policy as A, then policy as B
MISSING, UNPARSEABLE = "missing", "unparseable"

# {metric: direction} (bench.core.metrics). What the judge says about the policy has a direction; facts about the
# judge itself (its position bias, agreement with gold) and the bookkeeping of calls, tokens and cost are counters.
METRICS = {
    "judge_win_rate": HIGHER,  # policy vs reference over judged pairs; tie = 0.5
    "judge_tie_rate": NO_DIRECTION,  # ties (explicit or from position disagreement) / judged pairs
    "judge_position_disagreement_rate": COUNTER,  # pairs whose two orders disagree / judged pairs
    "judge_position_a_rate": COUNTER,  # parsed non-tie verdicts naming position A (0.5 = no position bias)
    "judge_prefers_longer": COUNTER,  # decided pairs where the preferred response is the longer one
    "judge_n_pairs": COUNTER,
    "judge_n_judged": COUNTER,
    "judge_n_missing": COUNTER,  # a call failed after all retries
    "judge_n_unparseable": COUNTER,  # an answer named no winner
    "judge_calls": COUNTER,  # HTTP requests made by this run, retries included
    "judge_retries": COUNTER,
    "judge_cache_hits": COUNTER,  # judgments (pair x order) answered from the disk cache
    "judge_prompt_tokens": COUNTER,  # this run's new calls
    "judge_completion_tokens": COUNTER,
    "judge_cost_usd": COUNTER,  # estimated cost of this run's new calls
    "judge_total_cost_usd": COUNTER,  # estimated cost of every judgment behind these numbers, cached ones included
    "judge_mean_latency_s": COUNTER,  # per successful request of this run
    "judge_gold_agreement": COUNTER,  # world only: judge prefers the response with the higher gold reward
    "judge_gold_n": COUNTER,  # pairs behind judge_gold_agreement (judge and gold both non-tied)
    "judge_planned_calls": COUNTER,  # calls this run needs (the cache's misses), known before any call
    "judge_estimated_cost_usd": COUNTER,  # upper-bound estimate for the planned calls (output = max_tokens)
}


@dataclass
class _Job:
    pair: int
    order: str
    key: str
    messages: list[dict[str, str]]


class LLMJudge(Evaluator):
    name = "llm_judge"
    metrics = METRICS

    class Options(Evaluator.Options):  # values: conf/evaluator/llm_judge.yaml
        base_url: str | None = option("the OpenAI-compatible endpoint (null: $PREFNOISE_JUDGE_BASE_URL, else OpenAI)")
        model: str | None = option("the judge model (null: $PREFNOISE_JUDGE_MODEL, else gpt-4o-mini)")
        # where answers are kept, how calls are scheduled and priced, whether a bar shows: never the verdicts
        api_key_env: str = option("the NAME of the environment variable holding the key (never the key)",
                                  identity=False)
        template: str | None = option("a judge prompt template file (null: the task's own)")
        max_concurrency: int = option("calls in flight at once", COUNT, identity=False)
        timeout: float = option("seconds per call", POSITIVE, identity=False)
        max_retries: int = option("retries of a failed call (429, 5xx, timeouts)", Param(low=0, integer=True),
                                  identity=False)
        backoff_base: float = option("first retry's wait, seconds (doubling)", NONNEGATIVE, identity=False)
        backoff_max: float = option("longest wait between retries, seconds", NONNEGATIVE, identity=False)
        cache_dir: str | None = option("where judgments are cached (null: the user cache)", identity=False)
        price_input_per_1k: float = option("USD per 1000 input tokens, for the cost estimate", NONNEGATIVE,
                                           identity=False)
        price_output_per_1k: float = option("USD per 1000 output tokens", NONNEGATIVE, identity=False)
        json_mode: bool = option("ask for a JSON verdict")
        dry_run: bool = option("print the number of calls and the estimated cost, make none")
        max_tokens: int = option("tokens per answer", COUNT)
        temperature: float = option("the judge's sampling temperature", NONNEGATIVE)
        max_pairs: int | None = option("judge at most this many pairs (null: all)", Param(low=1, integer=True,
                                                                                          nullable=True))
        progress: bool = option("a progress bar over the calls", identity=False)

    @classmethod
    def from_options(cls, options: dict, **context):
        if "api_key" in options:
            raise ConfigError("evaluator.llm_judge never takes the API key itself: put it in an environment variable "
                              "and name that variable with api_key_env")
        return cls(**options)

    def validate(self) -> None:
        self.base_url = self.base_url or os.environ.get("PREFNOISE_JUDGE_BASE_URL") or DEFAULT_BASE_URL
        self.model = self.model or os.environ.get("PREFNOISE_JUDGE_MODEL") or DEFAULT_MODEL
        self.cache_dir = Path(self.cache_dir if self.cache_dir is not None else user_cache_dir() / "judge").expanduser()
        self.last_details: list[dict] = []  # per pair: verdicts per order, outcome, errors (for inspection)
        self.last_errors: dict[str, int] = {}  # error kind -> failed attempts, from the last evaluate

    def __repr__(self) -> str:
        return f"LLMJudge(base_url={safe_url(self.base_url)!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    # -- what determines an answer (the cache key); nothing secret, nothing about how calls are scheduled ---------
    def settings(self) -> dict:
        return {"base_url": safe_url(self.base_url).rstrip("/"), "model": self.model, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "json_mode": self.json_mode}

    def evaluate(self, batch: EvalBatch) -> dict[str, float]:
        t_start = time.perf_counter()
        n = len(batch.prompts)
        if not (len(batch.policy) == n and len(batch.reference) == n):
            raise ValueError(f"EvalBatch lists differ in length: {n} prompts, {len(batch.policy)} policy, "
                             f"{len(batch.reference)} reference responses")
        if self.max_pairs is not None:
            n = min(n, self.max_pairs)
        template_path, template_text = load_template(self.template or template_for_task(batch.task))
        jobs = self._jobs(batch, n, template_text)
        cache = JudgmentCache(self.cache_dir)
        try:
            answers = cache.get_many([j.key for j in jobs])
            todo: dict[str, _Job] = {}
            for j in jobs:
                if j.key not in answers:
                    todo.setdefault(j.key, j)  # identical judgments within a batch are asked once
            planned, plan = self._plan(n, jobs, answers, todo, template_path)
            if self.dry_run:
                print(f"[dry run] {plan}. No call made.", flush=True)
                log.debug("[dry run] %s", plan)
                return {**planned, "judge_calls": 0.0}
            log.info(plan)
            errors: dict[str, str] = {}
            stats = self._call(cache, todo, answers, errors) if todo else None
            metrics = self._aggregate(batch, n, jobs, answers, errors)
        finally:
            cache.close()
        self.last_errors = dict(stats.errors) if stats else {}
        metrics.update(planned)
        metrics.update(self._usage(stats, jobs, answers))
        summary = (f"llm_judge: win rate {metrics['judge_win_rate']:.3f} over {int(metrics['judge_n_judged'])}/{n} "
                   f"pairs ({int(metrics['judge_n_missing'])} missing, {int(metrics['judge_n_unparseable'])} "
                   f"unparseable); {int(metrics['judge_calls'])} calls, {int(planned['judge_cache_hits'])} cache "
                   f"hits, ${metrics['judge_cost_usd']:.4f}, {time.perf_counter() - t_start:.1f}s")
        if self.last_errors:
            summary += "; failed attempts: " + ", ".join(f"{k}={v}" for k, v in sorted(self.last_errors.items()))
        (log.warning if metrics["judge_n_missing"] else log.info)(summary)
        return metrics

    def _jobs(self, batch: EvalBatch, n: int, template_text: str) -> list[_Job]:
        """Every pair judged in both orders, each judgment keyed by everything that determines its answer."""
        settings = self.settings()
        jobs = []
        for i in range(n):
            p, pol, ref = batch.prompts[i], batch.policy[i], batch.reference[i]
            for order in ORDERS:
                a, b = (pol, ref) if order == "policy_first" else (ref, pol)
                jobs.append(_Job(i, order, cache_key(settings, template_text, p, a, b, order), render(template_text, p, a, b)))
        return jobs

    def _plan(self, n: int, jobs: list[_Job], answers: dict, todo: dict, template_path) -> tuple[dict, str]:
        """What the run will cost before any call: the planned calls and an upper-bound cost estimate."""
        cache_hits = sum(j.key in answers for j in jobs)
        est_in = sum(_estimate_tokens(j.messages) for j in todo.values())
        est_cost = self._cost(est_in, len(todo) * self.max_tokens)
        plan = (f"llm_judge: {n} pairs x 2 orders = {len(jobs)} judgments; {cache_hits} cached; "
                f"{len(todo)} calls to {self.model} at {safe_url(self.base_url)}; estimated cost <= ${est_cost:.4f} "
                f"(~{est_in} input tokens, <= {len(todo) * self.max_tokens} output tokens); template "
                f"{Path(template_path).name}")
        planned = {"judge_n_pairs": float(n), "judge_planned_calls": float(len(todo)),
                   "judge_estimated_cost_usd": est_cost, "judge_cache_hits": float(cache_hits)}
        return planned, plan

    def _call(self, cache: JudgmentCache, todo: dict, answers: dict, errors: dict):
        client = JudgeClient(base_url=self.base_url, model=self.model, api_key_env=self.api_key_env,
                             timeout=self.timeout, max_retries=self.max_retries, backoff_base=self.backoff_base,
                             backoff_max=self.backoff_max, max_tokens=self.max_tokens, temperature=self.temperature,
                             json_mode=self.json_mode)
        try:
            self._run(client, cache, list(todo.values()), answers, errors)
        finally:
            client.close()
        return client.stats

    def _usage(self, stats, jobs: list[_Job], answers: dict) -> dict[str, float]:
        """Calls, tokens, cost (this run's and of every judgment behind the numbers) and latency."""
        new_pt = stats.prompt_tokens if stats else 0
        new_ct = stats.completion_tokens if stats else 0
        judged_keys = {j.key for j in jobs if j.key in answers}
        all_pt = sum(int(answers[k].get("prompt_tokens", 0)) for k in judged_keys)
        all_ct = sum(int(answers[k].get("completion_tokens", 0)) for k in judged_keys)
        lat = stats.latencies if stats else []
        return {
            "judge_calls": float(stats.requests if stats else 0),
            "judge_retries": float(stats.retries if stats else 0),
            "judge_prompt_tokens": float(new_pt),
            "judge_completion_tokens": float(new_ct),
            "judge_cost_usd": self._cost(new_pt, new_ct),
            "judge_total_cost_usd": self._cost(all_pt, all_ct),
            "judge_mean_latency_s": sum(lat) / len(lat) if lat else math.nan,
        }

    def _run(self, client: JudgeClient, cache: JudgmentCache, todo: list[_Job], answers: dict, errors: dict) -> None:
        """Call the judge for every job; each answer is cached by the worker the moment it arrives, so an
        interrupted run (Ctrl-C, a killed job) keeps every judgment already made."""
        from tqdm.auto import tqdm

        def one(job: _Job):
            res = client.complete(job.messages)  # never raises
            if res.text is None:
                return None, f"{res.error_kind}: {res.error}"
            value = {"text": res.text, "prompt_tokens": res.prompt_tokens,
                     "completion_tokens": res.completion_tokens, "model": self.model}
            cache.put(job.key, value)
            return value, None

        pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="llm_judge")
        futures = {pool.submit(one, j): j for j in todo}
        try:
            with tqdm(total=len(todo), desc="llm_judge", unit="call", disable=not self.progress) as bar:
                for fut in as_completed(futures):
                    value, error = fut.result()
                    if value is not None:
                        answers[futures[fut].key] = value
                    else:
                        errors[futures[fut].key] = error
                    bar.update(1)
        finally:  # on an interrupt, drop queued calls; the ones in flight still land in the cache
            pool.shutdown(wait=True, cancel_futures=True)

    def _aggregate(self, batch: EvalBatch, n: int, jobs: list[_Job], answers: dict, errors: dict) -> dict:
        per_pair, raw, n_a, n_decided_orders = _verdicts(n, jobs, answers, errors)

        wins = ties = disagree = missing = unparseable = 0
        decided: list[tuple[int, str]] = []  # (pair, "policy" | "reference")
        self.last_details = []
        for i in range(n):
            o1, o2 = per_pair[i][ORDERS[0]], per_pair[i][ORDERS[1]]
            if MISSING in (o1, o2):
                outcome = MISSING
                missing += 1
            elif UNPARSEABLE in (o1, o2):
                outcome = UNPARSEABLE
                unparseable += 1
            elif o1 != o2:
                outcome = "tie"
                disagree += 1
                ties += 1
            else:
                outcome = o1
                if o1 == "tie":
                    ties += 1
                else:
                    wins += o1 == "policy"
                    decided.append((i, o1))
            self.last_details.append({"pair": i, "policy_first": o1, "reference_first": o2, "outcome": outcome,
                                      "answers": raw[i]})
        judged = n - missing - unparseable
        nan = math.nan
        out = {
            "judge_win_rate": (wins + 0.5 * ties) / judged if judged else nan,
            "judge_tie_rate": ties / judged if judged else nan,
            "judge_position_disagreement_rate": disagree / judged if judged else nan,
            "judge_position_a_rate": n_a / n_decided_orders if n_decided_orders else nan,
            "judge_n_judged": float(judged),
            "judge_n_missing": float(missing),
            "judge_n_unparseable": float(unparseable),
        }
        longer = [(len(batch.policy[i]) > len(batch.reference[i])) == (w == "policy")
                  for i, w in decided if len(batch.policy[i]) != len(batch.reference[i])]
        out["judge_prefers_longer"] = sum(longer) / len(longer) if longer else nan
        if batch.gold_reward is not None:
            agree = total = 0
            for i, w in decided:
                diff = batch.gold_reward(batch.prompts[i], batch.policy[i]) - batch.gold_reward(
                    batch.prompts[i], batch.reference[i])
                if diff == 0:  # the gold reward has no preference: nothing to agree with
                    continue
                total += 1
                agree += (diff > 0) == (w == "policy")
            out["judge_gold_agreement"] = agree / total if total else nan
            out["judge_gold_n"] = float(total)
        return out

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens / 1000 * self.price_input_per_1k + completion_tokens / 1000 * self.price_output_per_1k


def _verdicts(n: int, jobs: list[_Job], answers: dict, errors: dict):
    """(per pair and order: policy, reference, tie, missing or unparseable; per pair and order: the raw answer or
    the error; verdicts naming position A; verdicts naming a position)."""
    per_pair: dict[int, dict[str, str]] = {i: {} for i in range(n)}
    raw: dict[int, dict[str, str | None]] = {i: {} for i in range(n)}
    n_a = n_decided_orders = 0
    for j in jobs:
        if j.key not in answers:
            per_pair[j.pair][j.order] = MISSING
            raw[j.pair][j.order] = errors.get(j.key, "not judged")
            continue
        text = answers[j.key].get("text")
        v = parse_verdict(text)
        raw[j.pair][j.order] = text
        if v is None:
            per_pair[j.pair][j.order] = UNPARSEABLE
            continue
        if v in ("A", "B"):
            n_decided_orders += 1
            n_a += v == "A"
        first, second = ("policy", "reference") if j.order == "policy_first" else ("reference", "policy")
        per_pair[j.pair][j.order] = {"A": first, "B": second, "tie": "tie"}[v]
    return per_pair, raw, n_a, n_decided_orders


def _estimate_tokens(messages: list[dict[str, str]]) -> int:
    """~4 characters per token plus a few per message: good enough for a cost estimate before any call."""
    return sum(len(m["content"]) // 4 + 4 for m in messages) + 3
