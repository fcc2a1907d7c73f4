"""A tiny document model rendered to both Markdown and HTML, so the two reports never disagree.

Blocks are tuples: ("h", level, text), ("p", text), ("list", [text]), ("table", DataFrame), ("img", file, alt),
("code", text). Inline `backticks` become <code> in HTML. No dependency beyond pandas (``to_html``).
"""
from __future__ import annotations

import html
import math
import re

import pandas as pd

CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.2em}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}"""


def fmt(x, digits: int = 4) -> str:
    """Numbers to compact text: 4 significant digits, integers as such, NaN as an empty cell."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return ""
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == int(x) and abs(x) < 1e6:
            return str(int(x)) if abs(x) >= 1 or x == 0 else f"{x:.{digits}g}"
        return f"{x:.{digits}g}"
    return str(x)


def fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "<1e-4" if p < 1e-4 else f"{p:.3g}"


def as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell as display text (numbers through ``fmt``), so Markdown and HTML show the same strings."""
    return df.apply(lambda col: col.map(lambda v: fmt(v.item() if hasattr(v, "item") else v)))


def md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_"
    t = as_text(df)
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return "\n".join(lines)


def _inline_html(text: str) -> str:
    s = html.escape(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)


def to_markdown(blocks) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "list":
            out.append("\n".join(f"- {x}" for x in b[1]) if b[1] else "_(none)_")
        elif kind == "table":
            out.append(md_table(b[1]))
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})")
        elif kind == "code":
            out.append("```\n" + b[1] + "\n```")
    return "\n\n".join(out) + "\n"


def to_html(blocks, title: str) -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{_inline_html(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(b[1])}</p>")
        elif kind == "list":
            items = "".join(f"<li>{_inline_html(x)}</li>" for x in b[1])
            out.append(f"<ul>{items}</ul>" if b[1] else "<p><i>(none)</i></p>")
        elif kind == "table":
            out.append(as_text(b[1]).to_html(index=False, escape=True, border=0) if not b[1].empty else "<p><i>(none)</i></p>")
        elif kind == "img":
            out.append(f"<p><img src='{html.escape(b[1])}' alt='{html.escape(b[2])}'></p>")
        elif kind == "code":
            out.append(f"<pre>{html.escape(b[1])}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
