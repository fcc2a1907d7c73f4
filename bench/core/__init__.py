"""The foundation every other part stands on; it imports nothing else from the project.

- ``files``: atomic writes, JSON and JSONL
- ``cache``: stable hashes and the content-addressed artifact cache (safe under parallel jobs)
- ``registry``: name -> entry registries with lazy ``module:attr`` entries and did-you-mean errors
- ``spec``: one field's valid values (``Param``) and the one-line error for a bad one (``ConfigError``)
- ``counting``: exact counts (``round(rate * n)``) and the bisection that calibrates a shift to hit one
- ``text``: the text of a prompt or completion, plain or conversational
- ``records``: the cell records under ``results/cells/`` and their tidy table
- ``plugins``: building a part from its config node (by registered name or a user's ``_target_``)
"""
