"""``python -m bench.sweep status [sweep dir] [--watch N] [--json] [-v]``"""
import sys

from bench.sweep.status import main

sys.exit(main())
