"""spark-submit entrypoint: extract face crops for videos not yet extracted (`deepsift extract` arguments)."""

import sys

from deepsift.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
