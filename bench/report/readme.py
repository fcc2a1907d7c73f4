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

from bench.report import archive
from bench.report.build import analyse
from bench.report.document import hp_source_title
from bench.report.primary import primary_blocks
from bench.report.render import to_markdown


def render(sweep: str, archives: Path = archive.DEFAULT_ROOT, metric: str = "gold_reward") -> str:
    """The block's Markdown: from the archives under ``archives`` alone (no live results), for records of ``sweep``."""
    with tempfile.TemporaryDirectory() as empty:
        source = archive.view(Path(empty), archive.archived(Path(archives)))
        got = analyse(source, metric, sweep)
    if got is None:
        return f"No archived records of sweep `{sweep}`.\n"
    res, analyses, _ = got
    n_ok = int((res.cells["status"] == "ok").sum())
    blocks: list = [("p", f"From the archived records of sweep `{sweep}` (`docs/results/`): {n_ok} complete cells, "
                          f"{len(res.failed)} failed, {len(res.missing)} missing (`make report REPORT_ARGS=\"--sweep "
                          f"{sweep}\"` gives the whole report).")]
    for a in analyses:
        b = primary_blocks(a, a["primary"])
        blocks += [("h", 4, f"{b[0][2]}, values: {hp_source_title(a['hp'])}")] + b[1:]
    return to_markdown(blocks)


def markers(sweep: str) -> tuple[str, str]:
    return f"<!-- STUDY:{sweep} -->", f"<!-- /STUDY:{sweep} -->"


def blocks_in(text: str) -> dict[str, str]:
    """{sweep: the block's text between its markers} for every study block of ``text``."""
    return {m.group(1): m.group(2) for m in re.finditer(r"<!-- STUDY:(\S+) -->\n(.*?)<!-- /STUDY:\1 -->", text, re.S)}


def write(readme: Path, sweep: str, block: str) -> None:
    """Replace the block of ``sweep`` in ``readme`` (its markers must be there: where it goes is the README's
    choice)."""
    text = readme.read_text()
    start, end = markers(sweep)
    if start not in text or end not in text:
        raise SystemExit(f"{readme}: no {start} ... {end} markers; put them where the study's block belongs")
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + block + end + rest.split(end, 1)[1])


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
