"""The report's analysis of one source of values (the defaults, or one tuning rule): the contract between the module
that builds it (``bench.report.build``) and those that read it (``bench.report.document``, ``bench.report.controls``).
"""
from __future__ import annotations

from typing import TypedDict

import pandas as pd

from bench.report.aggregate import Results


class Analysis(TypedDict):
    hp: str  # the source of values: "default" or a tuning rule
    tag: str  # its suffix in file names ("" for the defaults, or when there is one source)
    res: Results  # the cells of that source
    baseline: str  # the loss (or method) every other one is compared with
    headline: str | None  # the headline metric (None: no metric in the records)
    table: pd.DataFrame  # bench.report.tables.robustness_table
    summary: pd.DataFrame
    paired: pd.DataFrame  # paired tests against the baseline
    cost: pd.DataFrame
    headroom: pd.DataFrame  # bench.report.controls.controls_of: the oracle cleaner's headroom per condition
    share: pd.DataFrame  # each curve's share of it
    interaction: pd.DataFrame  # the noise x loss contrasts
    controls_note: str | None  # why there is no headroom, when there is none
    positive: str | None  # the positive control's arm
    primary: pd.DataFrame  # bench.report.primary.primary_table: the study's answer in one table
