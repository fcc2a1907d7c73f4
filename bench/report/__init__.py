"""Robustness report: aggregate cell records into tables, paired statistics, figures and a Markdown/HTML report.

    python -m bench.report --results results        # writes results/report/

Modules: ``aggregate`` (records -> tidy tables, missing/failed cells), ``stats`` (summaries, paired tests vs DPO,
Holm), ``controls`` (the oracle cleaner's headroom per condition, each loss's slope of its gap to DPO over the
rate), ``plots`` (matplotlib figures), ``render`` (Markdown/HTML), ``build`` (puts it together).
"""
from bench.report.build import build_report

__all__ = ["build_report"]
