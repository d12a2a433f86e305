"""Files that hold secrets: owner-only (0600) from their first byte."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str, *, append: bool = False) -> None:
    """Write `text` to `path` so that no other user can ever read it.

    A new content is written to a staging file created 0600 and renamed over `path`, so the
    secret is never readable by others, not even between a write and a chmod. With `append`,
    the existing file is narrowed to 0600 before the text is added.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if append:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(text)
        return
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.unlink(missing_ok=True)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    staging.replace(path)
