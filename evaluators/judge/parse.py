"""Turn a judge's answer into a verdict: ``"A"``, ``"B"``, ``"tie"`` or ``None`` (unparseable).

Tried in order, the first kind of evidence that is found decides; if that evidence contradicts itself ("Response A
is better ... Response B is better") the answer is unparseable rather than guessed:

1. a JSON object anywhere in the text with a ``winner``-like key (``{"winner": "A"}``); a JSON object without
   one (some servers wrap free text as ``{"response": "..."}``) has its string values parsed as text;
2. a broken-JSON ``"winner": "A"``;
3. MT-Bench style ``[[A]]`` / ``[[B]]`` / ``[[C]]`` (C = tie);
4. phrases: "Response A is better", "I prefer Output (B)", "the winner is A", "the answer is B", "A wins";
5. a whole answer (or its first line) that is just the label: ``A``, ``(b)``, ``**Response A**``, ``"B".``,
   ``A. A``;
6. tie phrases: "tie", "equally good", "both are equally ...".

The cache stores raw answers and re-parses them on every read, so parser fixes apply to cached judgments for free.
A bare lowercase ``a`` only counts right after a noun ("response a"), never as the article ("I prefer a short
answer").
"""
from __future__ import annotations

import json
import re

Verdict = str  # "A" | "B" | "tie"

_WINNER_KEYS = ("winner", "verdict", "preferred", "preference", "better", "better_response", "choice", "answer",
                "result", "decision", "output")
_TIE_WORDS = {"tie", "draw", "equal", "equally good", "both", "neither", "c", "same", "none", "tied"}

_L = r"(?-i:([AB]))"  # the label, upper case only where no noun announces it

_PHRASES = [
    # "Response A is better", "Output (B) is clearly the better one", "A is preferred"
    re.compile(r"\b(?:response|output|assistant|answer|candidate|option|model)\s*[\(\[\"'*]*([AB])[\)\]\"'*]*\s+is\s+"
               r"(?:clearly\s+|much\s+|slightly\s+|significantly\s+|the\s+)?"
               r"(?:better|preferred|superior|stronger|more\s+helpful|the\s+winner|winner|best)\b", re.I),
    re.compile(r"(?<![\w'])" + _L + r"\s+is\s+(?:clearly\s+|much\s+|slightly\s+)?(?:better|preferred|superior|the\s+winner)\b"),
    # "I prefer Response A", "I would choose B", "I pick output (A)"
    re.compile(r"\b(?:prefer|choose|pick|select)\s+(?:response|output|assistant|answer|candidate|option)?\s*"
               r"[\(\[\"'*]*" + _L + r"[\)\]\"'*]*(?![\w'])", re.I),
    # "the winner is A", "winner: Response B", "the answer is A", "verdict: B", "better response: A"
    re.compile(r"\b(?:winner|verdict|answer|choice|better\s+response|preferred\s+response)\s*(?:is|:|=)\s*"
               r"(?:response|output|assistant)?\s*[\(\[\"'*]*" + _L + r"[\)\]\"'*]*(?![\w'])", re.I),
    # "Response A wins"
    re.compile(r"(?:\b(?:response|output|assistant)\s*[\(\[\"'*]*([ABab])|(?<![\w'])" + _L + r")[\)\]\"'*]*\s+wins\b",
               re.I),
]
_BARE = re.compile(r"^\W*(?:(?:response|output|assistant|answer|option)\s*)?[\(\[]?([AB])[\)\]]?\W*$", re.I)
_MTBENCH = re.compile(r"\[\[\s*([ABC])\s*\]\]", re.I)
_JSON_WINNER = re.compile(r"[\"']?(?:" + "|".join(_WINNER_KEYS) + r")[\"']?\s*[:=]\s*[\"']?([^\"',}\n]{1,40})", re.I)
_TIE = re.compile(r"\b(?:it'?s\s+a\s+tie|tie|tied|draw|equally\s+(?:good|bad|helpful|strong|weak)|"
                  r"both\s+(?:responses\s+)?(?:are\s+)?equally|neither\s+is\s+better|no\s+clear\s+winner)\b", re.I)


def normalize_label(value: object) -> Verdict | None:
    """A winner field's value ("A", "Response B", "tie", "[[A]]") as a verdict, or None."""
    if value is None:
        return None
    s = str(value).strip().strip("\"'*.[]() ").lower()
    if s in ("a", "b"):
        return s.upper()
    if s in _TIE_WORDS:
        return "tie"
    m = re.fullmatch(r"(?:response|output|assistant|answer|option|model|candidate)[\s_]*\(?([ab])\)?", s)
    if m:
        return m.group(1).upper()
    return None


def _unanimous(found: list[Verdict]) -> Verdict | None:
    """All matches agree -> that verdict; contradicting matches -> None (unparseable, never a guess)."""
    distinct = set(found)
    return found[0] if len(distinct) == 1 else None


def _json_objects(text: str):
    """Every top-level JSON object embedded in the text (code fences and prose around it allowed)."""
    dec = json.JSONDecoder()
    i = text.find("{")
    while i != -1:
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            yield obj
        i = text.find("{", end)


def _from_json(text: str, depth: int = 0) -> tuple[bool, Verdict | None]:
    """(found a JSON object, verdict). A winner key decides; otherwise string values are parsed as text."""
    found_obj = False
    verdicts: list[Verdict] = []
    for obj in _json_objects(text):
        found_obj = True
        lowered = {str(k).lower(): v for k, v in obj.items()}
        keyed = [k for k in _WINNER_KEYS if k in lowered]
        if keyed:
            v = normalize_label(lowered[keyed[0]])
            if v is not None:
                verdicts.append(v)
            continue
        if depth == 0:  # e.g. {"response": "The answer is A."}: parse the wrapped text
            for v in obj.values():
                if isinstance(v, str):
                    inner = parse_verdict(v, _depth=depth + 1)
                    if inner is not None:
                        verdicts.append(inner)
    return found_obj, (_unanimous(verdicts) if verdicts else None)


def parse_verdict(text: str | None, _depth: int = 0) -> Verdict | None:
    """Parse a judge's answer; ``None`` when it names no winner or contradicts itself. Never raises."""
    if not text or not isinstance(text, str):
        return None
    text = text.strip()
    # 1. JSON
    if "{" in text:
        found, v = _from_json(text, _depth)
        if v is not None:
            return v
    # 2. broken JSON / key-value
    found = [normalize_label(m.group(1)) for m in _JSON_WINNER.finditer(text)]
    found = [v for v in found if v is not None]
    if found:
        return _unanimous(found)
    # 3. MT-Bench [[A]]
    found = [{"A": "A", "B": "B", "C": "tie"}[m.group(1).upper()] for m in _MTBENCH.finditer(text)]
    if found:
        return _unanimous(found)
    # 4. phrases
    found = [next(g for g in m.groups() if g).upper() for rx in _PHRASES for m in rx.finditer(text)]
    if found:
        return _unanimous(found)
    # 5. the whole answer (or its first line) is just the label
    first_line = text.splitlines()[0] if text else ""
    for candidate in (text, first_line):
        m = _BARE.match(candidate)
        if m:
            return m.group(1).upper()
    words = re.findall(r"[A-Za-z]+", text)  # "A. A\n\nA": nothing but one repeated label
    if words and set(words) in ({"A"}, {"B"}):
        return words[0]
    # 6. tie
    if _TIE.search(text):
        return "tie"
    return None
