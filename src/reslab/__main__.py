"""``python -m reslab``: the same as the ``reslab`` command."""

import sys

from reslab.cli import main

sys.exit(main())
