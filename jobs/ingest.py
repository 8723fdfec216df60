"""spark-submit entrypoint: ingest video files into deepsift.videos (`deepsift ingest` arguments)."""

import sys

from deepsift.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
