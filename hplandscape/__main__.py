"""``python -m hplandscape`` is the ``hplandscape`` command."""

import sys

from hplandscape.cli import main

sys.exit(main())
