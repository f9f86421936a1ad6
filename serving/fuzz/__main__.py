"""`python -m serving.fuzz`: runs `serving.fuzz.cli.main`."""

import sys

from serving.fuzz.cli import main

if __name__ == "__main__":
    sys.exit(main())
