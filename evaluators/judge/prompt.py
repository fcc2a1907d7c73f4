"""Judge prompt templates: files in ``evaluators/templates/`` (or any path), rendered into chat messages.

A template is plain text with an optional ``[system]`` section followed by a ``[user]`` section (each header on a
line of its own). Placeholders are ``{{prompt}}``, ``{{response_a}}`` and ``{{response_b}}``; they are filled in
one pass, so a placeholder written inside a response is left as text, never expanded.

Everything under judgment is delimited: the template wraps each value in XML-like tags (``<response_a>...
</response_a>``) and the values are escaped (``&``, ``<``, ``>`` become entities) so that a response cannot close
its tag, open another, or otherwise pose as part of the judge's instructions. ``unrender`` inverts this: tests use
it to show the boundaries are unambiguous.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
PLACEHOLDERS = ("prompt", "response_a", "response_b")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.M)


def template_for_task(task: str) -> str:
    """Default template file name for a task: the embedded world has its own, everything else is general."""
    return "judge_world.txt" if task == "world" else "judge_general.txt"


def load_template(name: str) -> tuple[str, str]:
    """(resolved path, text). ``name`` is a file in ``evaluators/templates/`` or a path; the text is validated."""
    path = Path(name).expanduser()
    if not path.is_file():
        path = TEMPLATE_DIR / name
    if not path.is_file():
        choices = sorted(p.name for p in TEMPLATE_DIR.glob("*.txt"))
        raise FileNotFoundError(f"judge template {name!r} not found (a path, or one of {', '.join(choices)})")
    text = path.read_text()
    missing = [p for p in PLACEHOLDERS if "{{" + p + "}}" not in text.replace(" ", "")]
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(PLACEHOLDERS))
    if missing or unknown:
        raise ValueError(f"judge template {path}: missing placeholders {missing}, unknown placeholders {unknown}")
    return str(path), text


def escape(text: str) -> str:
    """Escape a value placed between tags: it can then contain no tag at all."""
    return html.escape(text, quote=False)


def render(template: str, prompt: str, response_a: str, response_b: str) -> list[dict[str, str]]:
    """Chat messages for one judgment. The template is split into sections first and the escaped values are
    substituted afterwards, in a single pass, so a value can create neither a section nor a placeholder."""
    values = {"prompt": escape(prompt), "response_a": escape(response_a), "response_b": escape(response_b)}
    messages = []
    for role, body in split_sections(template):
        messages.append({"role": role, "content": _PLACEHOLDER.sub(lambda m: values[m.group(1)], body).strip()})
    return messages


def split_sections(template: str) -> list[tuple[str, str]]:
    """[(role, body)]: the ``[system]``/``[user]`` sections, or the whole text as one user message."""
    pieces = _SECTION.split(template)  # [before, role, body, role, body, ...]
    if len(pieces) == 1:
        return [("user", template)]
    if pieces[0].strip():
        raise ValueError("judge template has text before its first [system]/[user] header")
    return list(zip(pieces[1::2], pieces[2::2]))


def unrender(content: str, tag: str) -> str:
    """The value between ``<tag>`` and ``</tag>`` in a rendered message, unescaped (exactly one such span)."""
    spans = re.findall(rf"<{tag}>\n?(.*?)\n?</{tag}>", content, flags=re.S)
    if len(spans) != 1:
        raise ValueError(f"expected exactly one <{tag}> span, found {len(spans)}")
    return html.unescape(spans[0])
