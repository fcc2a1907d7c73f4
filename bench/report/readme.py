"""A study's block in the README, rendered from its archived records alone, so the README's numbers are the
archive's: between ``<!-- STUDY:<sweep> -->`` and ``<!-- /STUDY:<sweep> -->``, the study's primary table
(``bench.report.primary``) for each source of values, with how many cells it rests on. ``tests/test_readme_study.py``
checks that every such block of the README is what the archive gives; ``make verdict-archive`` rewrites it.

    python -m bench.report.readme --sweep verdict                    # print the block
    python -m bench.report.readme --sweep verdict --write README.md  # replace it in the README
"""
from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from bench.core.files import atomic_write_text
from bench.report import archive
from bench.report.build import analyse
from bench.report.document import hp_source_title
from bench.report.primary import primary_blocks
from bench.report.render import to_markdown


def render(sweep: str, archives: Path = archive.DEFAULT_ROOT, metric: str = "gold_reward") -> str:
    """The block's Markdown: from the archives under ``archives`` alone (no live results), for records of ``sweep``."""
    with tempfile.TemporaryDirectory() as empty, archive.viewed(Path(empty), archive.archived(Path(archives))) as source:
        got = analyse(source, metric, sweep)
    if got is None:
        return f"No archived records of sweep `{sweep}`.\n"
    res, analyses, _ = got
    n_ok = int((res.cells["status"] == "ok").sum())
    blocks: list = [("p", f"From the archived records of sweep `{sweep}` (`{_where(archives)}/`): {n_ok} "
                          f"complete cells, {len(res.failed)} failed, {len(res.missing)} missing (`make report "
                          f"REPORT_ARGS=\"--sweep {sweep}\"` gives the whole report).")]
    for a in analyses:
        b = primary_blocks(a, a["primary"])
        blocks += [("h", 4, f"{b[0][2]}, values: {hp_source_title(a['hp'])}")] + b[1:]
    return to_markdown(blocks)


def _where(archives: Path) -> str:
    """The archive folder as the block names it: its last two parts (``docs/results``), wherever the checkout is."""
    return "/".join(Path(archives).parts[-2:])


def markers(sweep: str) -> tuple[str, str]:
    return f"<!-- STUDY:{sweep} -->", f"<!-- /STUDY:{sweep} -->"


BLOCK = re.compile(r"^<!-- STUDY:(\S+) -->\n(.*?)^<!-- /STUDY:\1 -->$", re.S | re.M)  # markers on lines of their own


def blocks_in(text: str) -> dict[str, str]:
    """{sweep: the block's text between its markers} for every study block of ``text`` (one per sweep)."""
    out: dict[str, str] = {}
    for m in BLOCK.finditer(text):
        if m.group(1) in out:
            raise SystemExit(f"two blocks of study {m.group(1)!r}: keep one pair of its markers")
        out[m.group(1)] = m.group(2)
    return out


def write(readme: Path, sweep: str, block: str) -> None:
    """Replace the block of ``sweep`` in ``readme``: its markers, each on a line of its own, must be there once
    (where the block goes is the README's choice)."""
    text = readme.read_text(encoding="utf-8")
    found = [m for m in BLOCK.finditer(text) if m.group(1) == sweep]
    start, end = markers(sweep)
    if len(found) != 1:
        raise SystemExit(f"{readme}: {'no' if not found else len(found)} {start} ... {end} marker pairs (each on a "
                         "line of its own); one pair goes where the study's block belongs")
    m = found[0]
    atomic_write_text(readme, text[: m.start(2)] + block + text[m.end(2):])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report.readme", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", required=True, help="the study (its records' sweep name)")
    ap.add_argument("--archives", type=Path, default=archive.DEFAULT_ROOT, help="folder of archived studies")
    ap.add_argument("--write", type=Path, default=None, metavar="README", help="replace the block in this file")
    a = ap.parse_args(argv)
    block = render(a.sweep, a.archives)
    if a.write is None:
        print(block, end="")
    else:
        write(a.write, a.sweep, block)
        print(f"wrote the {a.sweep!r} block of {a.write} from {a.archives}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
