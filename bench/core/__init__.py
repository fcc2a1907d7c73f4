"""The foundation every other part stands on; it imports nothing else from the project.

- ``files``: atomic writes, JSON and JSONL
- ``cache``: stable hashes and the content-addressed artifact cache (safe under parallel jobs)
- ``options``: options declared once (``option``: a field's type, valid values, doc and place in a cell's identity;
  ``Param``: one field's valid values) and the one config error (``ConfigError``, with its did-you-mean)
- ``registry``: name -> entry registries with lazy ``module:attr`` entries and did-you-mean errors
- ``counting``: exact counts (``round(rate * n)``) and the bisection that calibrates a shift to hit one
- ``text``: the text of a prompt or completion, plain or conversational
- ``metrics``: what a metric's numbers mean for comparisons (a direction, none, or a counter never compared)
- ``detection``: how well a set of named pairs finds the flipped ones (precision, recall, AUROC)
- ``progress``: one progress bar per running cell, and the quiet it needs
- ``records``: the cell records under ``results/cells/`` and their tidy table

Building a part from its config node (by registered name or a user's ``_target_``) is ``bench.config.plugin``'s.
"""
