"""``python -m socket2.http MODULE:APP``: see socket2/http/cli.py."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
