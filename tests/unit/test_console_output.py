"""What a command prints besides its results: each Python warning once."""

from __future__ import annotations

import io
import logging


from deepsift.logs import OnceFilter


def test_a_repeated_warning_is_said_once():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(OnceFilter())
    logger = logging.getLogger("deepsift.test_console_output")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(6):  # as six Spark tasks or six tables would
            logger.warning("YuNet weights unavailable: falling back to %s", "Haar")
        logger.warning("another fact")
        logger.error("YuNet weights unavailable: falling back to %s", "Haar")  # another level: said too
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert out.getvalue().splitlines() == [
        "YuNet weights unavailable: falling back to Haar", "another fact", "YuNet weights unavailable: falling back to Haar",
    ]
