"""``python -m gnm`` runs the ``gnm`` command line (same as the installed ``gnm`` script)."""

import sys

from gnm.cli import main

sys.exit(main())
