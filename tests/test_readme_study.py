"""The README's study blocks are the archive's numbers: each ``<!-- STUDY:<sweep> -->`` block equals what
``bench.report.readme`` renders from ``docs/results/`` alone (``make verdict-archive`` rewrites them)."""
from __future__ import annotations

import pytest

from bench.report import readme
from conftest import ROOT


def test_every_study_block_of_the_readme_is_what_its_archive_gives():
    text = (ROOT / "README.md").read_text()
    blocks, options = readme.blocks_in(text), readme.options_in(text)
    assert "verdict" in blocks
    marked = [line for line in text.splitlines() if line.startswith(("<!-- STUDY:", "<!-- /STUDY:"))]
    assert len(marked) == 2 * len(blocks), f"a study marker the blocks do not match (a typo?): {marked}"
    for sweep, block in blocks.items():
        assert block == readme.render(sweep, ROOT / "docs" / "results", **options[sweep]), (
            f"the README's {sweep!r} block differs from its archive: python -m bench.report.readme --sweep {sweep} "
            "--write README.md")


def test_write_replaces_only_its_block_and_needs_its_markers(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# T\n\n<!-- STUDY:s -->\nold\n<!-- /STUDY:s -->\n\nafter\n<!-- STUDY:t -->\nkeep\n<!-- /STUDY:t -->\n")
    readme.write(path, "s", "new\nlines\n")
    assert readme.blocks_in(path.read_text()) == {"s": "new\nlines\n", "t": "keep\n"}
    assert path.read_text().endswith("\n\nafter\n<!-- STUDY:t -->\nkeep\n<!-- /STUDY:t -->\n")
    with pytest.raises(SystemExit, match="no <!-- STUDY:u --> ... <!-- /STUDY:u --> marker pairs"):
        readme.write(path, "u", "x\n")
    quoted = "Put `<!-- STUDY:s -->` on a line of its own.\n\n<!-- STUDY:s -->\nold\n<!-- /STUDY:s -->\n"
    path.write_text(quoted)  # a marker quoted in the prose is not the block's
    readme.write(path, "s", "new\n")
    assert path.read_text() == quoted.replace("\nold\n", "\nnew\n")
    path.write_text(quoted + quoted.split("\n\n")[1])
    with pytest.raises(SystemExit, match="2 <!-- STUDY:s -->"):
        readme.write(path, "s", "x\n")


def test_a_marker_names_its_options_and_write_keeps_them(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("<!-- STUDY:s clean_from=p -->\nold\n<!-- /STUDY:s -->\n<!-- STUDY:t -->\nkeep\n<!-- /STUDY:t -->\n")
    assert readme.options_in(path.read_text()) == {"s": {"clean_from": "p"}, "t": {}}
    readme.write(path, "s", "new\n")
    assert path.read_text().startswith("<!-- STUDY:s clean_from=p -->\nnew\n<!-- /STUDY:s -->\n")
    with pytest.raises(SystemExit, match="unknown option.*colour.*valid: clean_from"):
        readme.options_in("<!-- STUDY:s colour=red -->\nx\n<!-- /STUDY:s -->\n")
