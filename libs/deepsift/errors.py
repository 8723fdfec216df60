"""The one base class of the failures a user can act on from the message alone.

Every module raises its own subclass (``ConfigError``, ``RegistryError``, ``NoInputError``, ...), so
callers can still catch one kind; the command line catches this base and prints the message without a
traceback. Any other exception reaching the command line is a bug and keeps its traceback.
"""

from __future__ import annotations


class DeepsiftError(Exception):
    """An expected failure the user can act on: the CLI prints its message, no traceback, and exits 1.

    A subclass may keep a built-in second base (``ValueError``, ``RuntimeError``, ...) where callers catch
    that. ``ConfigError`` is one too; the CLI says "configuration error" for it and exits 2.
    """
