"""Where a tool of the Java installation is: ``$JAVA_HOME/bin/<name>`` when JAVA_HOME is set, else ``PATH``.

Spark runs ``java`` and the read-only SQL extension is built with ``javac``; both are looked up the
same way Spark's launcher finds ``java``. Standard library only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def jdk_tool(name: str) -> Path | None:
    """The ``name`` tool (``java``, ``javac``) of the Java installation Spark uses, or None when it has none.

    >>> jdk_tool("no-such-jdk-tool") is None
    True
    """
    java_home = os.environ.get("JAVA_HOME")
    found = Path(java_home, "bin", name) if java_home else shutil.which(name)
    if not found or not Path(found).exists():
        return None
    return Path(found)
