"""Turn a sweep into one decision report: python report.py <multirun dir> [options].

Plain argparse rather than Hydra: the report reads finished runs, it is not a run. The code lives in
embedlab.cli, so the installed console script ``embedlab-report`` runs the same thing.
"""

from __future__ import annotations

import sys

from embedlab.cli import parse_report_args as parse_args  # noqa: F401  (tests and REPLs use it)
from embedlab.cli import report as main

if __name__ == "__main__":
    sys.exit(main())
