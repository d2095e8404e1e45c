"""``python run.py [-m] key=value ...``: the same as the ``reslab`` command, from a checkout.

python run.py -m depth=20,56,110 model=plain,residual
"""

import sys

from reslab.cli import main

if __name__ == "__main__":
    sys.exit(main())
