"""The layout rules that keep the project readable: short functions in library code, docs that point only inside
the repository, and a README map of modules that matches the tree. (The import contract is `lint-imports`.)"""
from __future__ import annotations

import ast
import re
import subprocess

from conftest import ROOT

LIBRARY = ("bench", "noise", "evaluators")
MAX_FUNCTION_LINES = 60  # issue 24 (was 80)


def _library_files():
    for base in LIBRARY:
        for path in sorted((ROOT / base).rglob("*.py")):
            if "perf" not in path.relative_to(ROOT).parts:  # benchmark scripts are scripts
                yield path


def test_no_function_in_library_code_is_longer_than_60_lines():
    long = []
    for path in _library_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long


def test_nothing_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    offenders = []
    for rel in tracked:
        if not rel.endswith((".py", ".md", ".yaml", ".txt", ".toml")) or rel == "tests/test_layout.py":
            continue
        text = (ROOT / rel).read_text(errors="replace")
        if re.search(r"shared/reference|\.\./shared|\.\./\.library", text):
            offenders.append(rel)
    assert not offenders, offenders


def test_the_readme_map_of_modules_matches_the_tree():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## How the code is laid out"):]
    section = section[: section.index("\n## ", 5)]
    listed = set(re.findall(r"^\| `(bench/[a-z_]+/?|noise/|evaluators/)`", section, flags=re.M))
    packages = {f"{p.parent.relative_to(ROOT)}/" for p in (ROOT / "bench").glob("*/__init__.py")}
    packages |= {"noise/", "evaluators/"}
    assert {x.rstrip("/") for x in listed} == {x.rstrip("/") for x in packages}, (listed, packages)


def test_every_package_exports_what_its_all_names():
    """``from <package> import *`` works for every package of the project (each name in ``__all__`` exists)."""
    import pkgutil

    packages = list(LIBRARY)
    for base in LIBRARY:
        packages += [m.name for m in pkgutil.walk_packages([str(ROOT / base)], f"{base}.") if m.ispkg]
    missing = []
    for name in packages:
        namespace: dict = {}
        try:
            exec(f"from {name} import *", namespace)  # noqa: S102 - the very statement a user would write
        except AttributeError as e:
            missing.append(f"{name}: {e}")
    assert len(packages) > 10 and not missing, missing


def test_project_imports_are_at_the_top_of_files():
    """Issue 24: an import of a project module inside a function hides the file's dependencies (lazy imports are
    for heavy third-party modules only); the count is ``python -m bench.perf.structure``'s."""
    from bench.perf.structure import function_level_imports

    found = function_level_imports()
    assert found == [], found


def test_hashing_a_cell_id_or_reading_records_imports_no_torch():
    """Slim package ``__init__``s: ``bench.cell.identity`` and ``bench.core.records`` load no model code."""
    from bench.perf.structure import loads_torch

    assert not loads_torch("bench.cell.identity")
    assert not loads_torch("bench.core.records")


def test_computing_a_cell_id_imports_no_torch_trl_or_transformers():
    """Issue 24: a resumed sweep decides each job's id (and skips it) without loading model code. A registered
    part's options are read from its light declaration (``bench/losses/options.py``, ``bench/methods/options.py``,
    ``evaluators/options.py``), never from its module; with a scorer set, whether the part reads scores too."""
    from bench import losses, methods
    from bench.config.compose import group_options
    from bench.perf.structure import every_part, heavy_imports_of_cell_ids

    sets = every_part()
    assert {f"loss={n}" for n in losses.names()} | {f"method={n}" for n in methods.names()} <= {
        " ".join(s) for s in sets}, "every registered loss and method has its YAML"
    sets += [[*s, "scorer=proxy"] for s in sets if s]  # _scores_read: each loss and method asked
    sets += [["evaluator=[gold,reward_model,llm_judge]"], ["method=curriculum", "method.by=ref_margin", "scorer=proxy"],
             ["loss=cdpo", "loss.eps=oracle", "scorer=oracle"]]
    loaded = heavy_imports_of_cell_ids(sets)
    assert len(loaded) == len(sets) and len(sets) > 2 * (len(group_options("loss")) + len(group_options("method")))
    assert not any(loaded.values()), {k: v for k, v in loaded.items() if v}


def test_a_registered_parts_options_are_declared_once_where_its_entry_names_them():
    """Where a registry entry names its options apart from its class (a light module), the class's ``Options`` is
    that very class: one declaration, read by the cell's identity without the class and by the class when built."""
    import evaluators
    import noise
    from bench import losses, methods
    from bench.methods import detectors
    from bench.tune import criteria

    named = {}
    for kind in (losses.KIND, methods.KIND, evaluators.KIND, noise.KIND, detectors.KIND, criteria.KIND):
        for name in kind.names():
            declared = kind.registry.options(name)
            if declared is not None:
                named[f"{kind.group}={name}"] = (kind.lookup(name).Options, declared)
                assert declared.__module__.rsplit(".", 1)[-1] == "options", (name, declared.__module__)
    assert {f"loss={n}" for n in losses.names()} | {f"method={n}" for n in methods.names()} <= set(named)
    assert "evaluator=reward_model" in named
    assert not {k: v for k, v in named.items() if v[0] is not v[1]}
