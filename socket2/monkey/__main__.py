"""``python -m socket2.monkey script.py [args]``: run a script with
everything patched before its first line."""
import sys

# Run through the package, not as a module of its own: the state (what is
# patched) must be the one that "import socket2.monkey" finds.
from socket2.monkey import main

if __name__ == "__main__":
    sys.exit(main())
