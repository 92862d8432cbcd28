"""``python -m hashring``: the ``hashring`` command line (see :mod:`hashring.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
