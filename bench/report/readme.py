"""A study's block in the README, rendered from its archived records alone, so the README's numbers are the
archive's: between ``<!-- STUDY:<sweep> -->`` and ``<!-- /STUDY:<sweep> -->``, the study's primary table
(``bench.report.primary``) for each source of values, with how many cells it rests on. ``tests/test_readme_study.py``
checks that every such block of the README is what the archive gives; ``make verdict-archive`` rewrites it. The
opening marker may name the report's options: ``<!-- STUDY:verdict_secondary clean_from=verdict -->`` starts the
secondary conditions' curves from the primary part's clean cells of the same seeds (``aggregate.clean_cells_of``).

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


def render(sweep: str, archives: Path = archive.DEFAULT_ROOT, metric: str = "gold_reward",
           clean_from: str | None = None) -> str:
    """The block's Markdown: from the archives under ``archives`` alone (no live results), for records of ``sweep``
    (and, with ``clean_from``, that sweep's clean rate-0 cells on the same seeds as its rate 0)."""
    with tempfile.TemporaryDirectory() as empty, archive.viewed(Path(empty), archive.archived(Path(archives))) as source:
        got = analyse(source, metric, sweep, clean_from=clean_from)
    if got is None:
        return f"No archived records of sweep `{sweep}`.\n"
    res, analyses, _ = got
    own, mine = res.cells["sweep"] == sweep, res.missing["sweep"] == sweep
    n_ok, n_failed = int((res.cells[own]["status"] == "ok").sum()), int((res.failed["sweep"] == sweep).sum())
    args = f"--sweep {sweep}" + (f" --clean-from {clean_from}" if clean_from else "")
    blocks: list = [("p", f"From the archived records of sweep `{sweep}` (`{_where(archives)}/`): {n_ok} "
                          f"complete cells, {n_failed} failed, {int(mine.sum())} missing{_clean(res, own, mine, clean_from)} "
                          f"(`make report REPORT_ARGS=\"{args}\"` gives the whole report).")]
    for a in analyses:
        b = primary_blocks(a, a["primary"])
        blocks += [("h", 4, f"{b[0][2]}, values: {hp_source_title(a['hp'])}")] + b[1:]
    return to_markdown(blocks)


def _clean(res, own, mine, clean_from: str | None) -> str:
    """The block's words on the clean cells ``clean_from`` lent as rate 0 (none: say so)."""
    if not clean_from:
        return ""
    n, gaps = int((~own).sum()), int((~mine).sum())
    if not n:
        return f"; no clean cell of sweep `{clean_from}` on its seeds: its curves start at their lowest noisy rate"
    return (f"; rate 0 of every noise type is {n} clean cells of sweep `{clean_from}` on the same seeds (no label "
            f"flipped){f', {gaps} of its clean cells missing' if gaps else ''}")


def _where(archives: Path) -> str:
    """The archive folder as the block names it: its last two parts (``docs/results``), wherever the checkout is."""
    return "/".join(Path(archives).parts[-2:])


def markers(sweep: str) -> tuple[str, str]:
    return f"<!-- STUDY:{sweep} -->", f"<!-- /STUDY:{sweep} -->"


# markers on lines of their own; the opening one may carry options (key=value, OPTIONS)
BLOCK = re.compile(r"^<!-- STUDY:(\S+)((?: [\w-]+=\S+)*) -->\n(.*?)^<!-- /STUDY:\1 -->$", re.S | re.M)
OPTIONS = {"clean_from": "a sweep whose clean rate-0 cells start the study's curves"}


def blocks_in(text: str) -> dict[str, str]:
    """{sweep: the block's text between its markers} for every study block of ``text`` (one per sweep)."""
    out: dict[str, str] = {}
    for m in BLOCK.finditer(text):
        if m.group(1) in out:
            raise SystemExit(f"two blocks of study {m.group(1)!r}: keep one pair of its markers")
        out[m.group(1)] = m.group(3)
    return out


def options_in(text: str) -> dict[str, dict[str, str]]:
    """{sweep: the options its opening marker names} (``render``'s keyword arguments), checked against OPTIONS."""
    out: dict[str, dict[str, str]] = {}
    for m in BLOCK.finditer(text):
        opts = dict(o.split("=", 1) for o in m.group(2).split())
        bad = sorted(set(opts) - set(OPTIONS))
        if bad:
            raise SystemExit(f"<!-- STUDY:{m.group(1)} -->: unknown option(s) {', '.join(bad)}; valid: "
                             + ", ".join(f"{k} ({v})" for k, v in OPTIONS.items()))
        out[m.group(1)] = opts
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
    atomic_write_text(readme, text[: m.start(3)] + block + text[m.end(3):])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report.readme", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", required=True, help="the study (its records' sweep name)")
    ap.add_argument("--archives", type=Path, default=archive.DEFAULT_ROOT, help="folder of archived studies")
    ap.add_argument("--write", type=Path, default=None, metavar="README", help="replace the block in this file")
    ap.add_argument("--clean-from", default=None, metavar="SWEEP",
                    help="that sweep's clean rate-0 cells start the curves (with --write: the README marker's "
                         "clean_from=SWEEP when not given)")
    a = ap.parse_args(argv)
    clean_from = a.clean_from
    if a.write is not None:  # the README's marker names the block's options: the block must be what it says
        marked = options_in(a.write.read_text(encoding="utf-8")).get(a.sweep, {}).get("clean_from")
        if clean_from is not None and clean_from != marked:
            raise SystemExit(f"--clean-from {clean_from} but {a.write}'s marker of {a.sweep!r} says "
                             f"clean_from={marked}: change the marker (<!-- STUDY:{a.sweep} clean_from=... -->) instead")
        clean_from = marked
    block = render(a.sweep, a.archives, clean_from=clean_from)
    if a.write is None:
        print(block, end="")
    else:
        write(a.write, a.sweep, block)
        print(f"wrote the {a.sweep!r} block of {a.write} from {a.archives}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
