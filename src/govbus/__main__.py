"""``python -m govbus``: the command line (same as the ``govbus`` script)."""

import sys

from govbus.cli import main

sys.exit(main())
