"""The experience store's disk going bad under an open store, and coming back.

The store's SQLite file (`chroma.sqlite3`) is overwritten with zeros *in place*, through the
same inode the open Chroma client reads, so its next read or write fails as it would on a
failing disk ("file is not a database"). Removing or renaming the folder would not do: the
open client keeps reading the unlinked file, and only writes fail. Permissions would not do
either when the bench runs as root. At the window's end the saved bytes are written back in
place, so the bench can see whether the open store comes back, and whether a new process
opens the folder (Chroma shares one client per path within a process, so only a new process
really reopens it from disk).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

DB_NAME = "chroma.sqlite3"
HOW = (
    f"{DB_NAME} overwritten with zeros in place under the open store at the window's start, "
    "its bytes written back at the window's end; reopened afterwards by a new process"
)
REOPEN_TIMEOUT_S = 120.0
REOPEN = (
    "import sys\n"
    "from memory.store import ExperienceStore\n"
    "print(ExperienceStore(sys.argv[1]).count())\n"
)


def count_or_none(store: Any) -> int | None:
    """The store's count, or None when it cannot be read."""
    from memory.errors import MemoryStoreError

    try:
        return int(store.count())
    except MemoryStoreError:
        return None


class StoreDiskFault:
    """Breaks and repairs an open `ExperienceStore`'s SQLite file, noting how many
    experiences it held when it broke and when it came back."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.db = Path(store.path) / DB_NAME
        self.saved: bytes | None = None
        self.stored_before: int | None = None
        self.stored_at_repair: int | None = None

    @property
    def broken(self) -> bool:
        return self.saved is not None

    def break_disk(self) -> None:
        """Zero the file in place (same inode), flushed to disk."""
        if self.saved is not None:
            return
        self.stored_before = count_or_none(self.store)
        data = self.db.read_bytes()
        with self.db.open("r+b") as f:
            f.write(b"\0" * len(data))
            f.flush()
            os.fsync(f.fileno())
        self.saved = data

    def repair_disk(self) -> None:
        """Write the saved bytes back in place; the file ends where it ended before."""
        if self.saved is None:
            return
        with self.db.open("r+b") as f:
            f.write(self.saved)
            f.truncate(len(self.saved))
            f.flush()
            os.fsync(f.fileno())
        self.saved = None
        self.stored_at_repair = count_or_none(self.store)

    def stored_since_repair(self) -> int:
        """Experiences the open store wrote after the disk came back (0 if it never did)."""
        now = count_or_none(self.store)
        if now is None or self.stored_at_repair is None:
            return 0
        return now - self.stored_at_repair


def reopens(path: str | Path) -> dict[str, Any]:
    """Whether a new process opens the folder as a store: its count, or its error line."""
    proc = subprocess.run(
        [sys.executable, "-c", REOPEN, str(path)],
        capture_output=True, text=True, timeout=REOPEN_TIMEOUT_S,
    )  # fmt: skip
    out = proc.stdout.strip()
    if proc.returncode == 0 and out.isdigit():
        return {"reopens": True, "reopened_count": int(out)}
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return {"reopens": False, "reopen_error": lines[-1] if lines else f"exit {proc.returncode}"}
