"""``python -m townhall``: the same as the ``townhall`` console script."""

import sys

from townhall.cli import main

if __name__ == "__main__":
    sys.exit(main())
