"""spark-submit entrypoint: `deepsift report` (same arguments)."""

import sys

from deepsift.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
