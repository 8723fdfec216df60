"""spark-submit entrypoint: `deepsift scan` (same arguments)."""

import sys

from deepsift.cli import main

if __name__ == "__main__":
    sys.exit(main(["scan", *sys.argv[1:]]))
