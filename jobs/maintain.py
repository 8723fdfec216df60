"""spark-submit entrypoint: OPTIMIZE and VACUUM every deepsift table (``--retention-hours``, default 168)."""

import sys

from deepsift.orchestration.maintenance import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
