"""spark-submit entrypoint: `deepsift train` (same arguments)."""

import sys

from deepsift.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
