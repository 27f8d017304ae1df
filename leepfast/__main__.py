"""``python -m leepfast``: the command line (see :mod:`leepfast.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
