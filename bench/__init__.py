"""prefnoise: which preference-optimization loss still works when the labels are wrong?

Entry point: ``python bench/run.py`` (see its docstring). The subpackages, each importing only those below it
(the contract in ``pyproject.toml``, checked by ``lint-imports``), top to bottom: ``sweep``, ``report``, ``cell``,
``methods``, ``training`` / ``evaluation``, (``evaluators``), ``data`` / ``losses``, (``noise``), ``world``,
``models``, ``config``, ``core``. The README's "How the code is laid out" says what each holds.
"""
