"""How the code is put together, counted: the figures issue 24 asked for, reproducible.

    python -m bench.perf.structure            # the table
    python -m bench.perf.structure --list     # and every offender

- function-level imports of project modules in library code (``bench``, ``noise``, ``evaluators``; the benchmark
  scripts under ``bench/perf`` are scripts and not counted): an import of a project module inside a function body
  hides the file's dependencies (lazy imports are for heavy third-party modules only);
- functions longer than ``LIMIT`` lines in library code;
- the mechanisms a plug-in kind can use: exception classes, registries, builders (``from_config``/``build``
  functions), option declarations (the ways a part says which options it takes);
- whether ``import bench.cell.identity`` (hashing a cell's id) and ``import bench.core.records`` load torch, and
  whether computing the cell id of the default config, of every loss and of every method loads torch, TRL or
  transformers (a registered part's options are read from its light declaration, never its module).
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from bench.config.compose import group_options

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("bench", "noise", "evaluators")
LIMIT = 60
HEAVY = ("torch", "trl", "transformers")  # what hashing a cell's id must not load
OPTION_PATTERNS = {  # how a part declared its options, before the one contract
    "Param dict (hyperparameters = {...})": r"^\s+hyperparameters\s*(:[^=]*)?=\s*\{",
    "OPTIONS tuple": r"^\s+OPTIONS\s*(:[^=]*)?=",
    "TRAIN_SPEC / factory(cls, name, options)": r"^(TRAIN_SPEC\s*=|make_\w+\s*=\s*factory\()",
    "config_class dataclass": r"^\s+config_class\s*=",
    "options dataclass (bench.core.options.Options)": r"^class \w+\((\w+\.)?Options\):",
}


def library_files():
    for base in PROJECT:
        for path in sorted((ROOT / base).rglob("*.py")):
            if "perf" not in path.relative_to(ROOT).parts:
                yield path


def _is_project(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in PROJECT


def function_level_imports() -> list[str]:
    """``file:line module`` of every import of a project module inside a function body."""
    out = []
    for path in library_files():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names if _is_project(a.name)]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module] if _is_project(node.module) else []
                else:
                    continue
                out += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names]
    return sorted(set(out))


def long_functions(limit: int = LIMIT) -> list[str]:
    out = []
    for path in library_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    return out


def mechanisms() -> dict[str, list[str]]:
    """Exception classes, registries, builders and option declarations defined in library code."""
    errors, registries, builders, options = [], [], [], {k: [] for k in OPTION_PATTERNS}
    for path in library_files():
        rel = path.relative_to(ROOT)
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                    re.search(r"(Error|Exception)$", ast.unparse(b)) for b in node.bases):
                errors.append(f"{rel}:{node.lineno} {node.name}")
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("Registry"):
                registries.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.FunctionDef) and node.name in ("from_config", "build") and node.col_offset == 0:
                builders.append(f"{rel}:{node.lineno} {node.name}")
        for kind, pattern in OPTION_PATTERNS.items():
            options[kind] += [f"{rel}:{i}" for i, line in enumerate(text.splitlines(), 1) if re.search(pattern, line)]
    return {"error classes": errors, "registries": registries, "builders": builders,
            **{f"options: {k}": v for k, v in options.items() if v}}


def loads_torch(module: str) -> bool:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return proc.stdout.strip().endswith("True")


def heavy_imports_of_cell_ids(override_sets: list[list[str]]) -> dict[str, list[str]]:
    """Computing the cell id of each set of overrides (composed as ``bench/run.py <overrides>`` composes them), in
    order in one fresh process: ``{"loss=ipo": [the HEAVY modules it loaded first], ...}`` (``default``: none)."""
    code = ("import json, sys\n"
            "from bench.cell.identity import cell_id\n"
            "from bench.config.compose import compose\n"
            f"heavy, out = {HEAVY!r}, {{}}\n"
            "for overrides in json.loads(sys.argv[1]):\n"
            "    before = {m for m in heavy if m in sys.modules}\n"
            "    cell_id(compose(overrides))\n"
            "    out[' '.join(overrides) or 'default'] = [m for m in heavy if m in sys.modules and m not in before]\n"
            "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(override_sets)], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def every_part() -> list[list[str]]:
    """The default config, every loss and every method (their YAMLs): what ``heavy_imports_of_cell_ids`` checks."""
    return [[]] + [[f"{group}={name}"] for group in ("loss", "method") for name in group_options(group)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print every offender too")
    args = ap.parse_args(argv)
    imports, long = function_level_imports(), long_functions()
    print(f"function-level project imports in library code: {len(imports)}")
    print(f"functions over {LIMIT} lines in library code: {len(long)}")
    if args.list:
        for line in imports + long:
            print("   ", line)
    for name, found in mechanisms().items():
        print(f"{name}: {len(found)}")
        if args.list:
            for line in found:
                print("   ", line)
    for module in ("bench.cell.identity", "bench.core.records"):
        print(f"import {module} loads torch: {loads_torch(module)}")
    loaded = {k: v for k, v in heavy_imports_of_cell_ids(every_part()).items() if v}
    print(f"the cell ids of the default config, every loss and every method load {'/'.join(HEAVY)}: "
          f"{bool(loaded)}{f' {loaded}' if loaded else ''}")


if __name__ == "__main__":
    main()
