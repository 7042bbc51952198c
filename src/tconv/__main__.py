"""``python -m tconv``: the same as the ``tconv`` command."""

import sys

from .tools.cli import main

sys.exit(main())
