"""`python -m ragkit ...` runs the `ragkit` command (see `ragkit.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
