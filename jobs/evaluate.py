"""spark-submit entrypoint: `deepsift evaluate` (same arguments)."""

import sys

from deepsift.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
