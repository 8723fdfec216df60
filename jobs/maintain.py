"""spark-submit entrypoint: `deepsift maintain` (same arguments: ``--retention-hours``, default 168)."""

import sys

from deepsift.cli import main

if __name__ == "__main__":
    sys.exit(main(["maintain", *sys.argv[1:]]))
