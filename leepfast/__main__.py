"""``python -m leepfast``: the command line (see :mod:`leepfast.cli`)."""

import sys

from .cli import main

sys.exit(main())
