"""spark-submit entrypoint: `deepsift rescore` (same arguments)."""

import sys

from deepsift.cli import main

if __name__ == "__main__":
    sys.exit(main(["rescore", *sys.argv[1:]]))
