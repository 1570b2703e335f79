"""The project's user-facing error base class, importable by library code without the CLI."""

from __future__ import annotations


class UserError(RuntimeError):
    """Something the user can fix; printed without a traceback."""
