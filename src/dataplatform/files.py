"""Files that hold secrets: created owner-only before a byte of the secret is written."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str, *, append: bool = False) -> None:
    """Write (or append) `text` to `path`, which is mode 0600 from the moment it exists.

    An existing file is narrowed to 0600 before the write, not after it.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
