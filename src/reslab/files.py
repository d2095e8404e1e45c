"""Atomic file writes and writable-directory checks, shared by the job, the results and the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and prove it takes a file; raises OSError otherwise.

    Tried for real: permission bits say little for root or on read-only mounts."""
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".reslab-write-test-{os.getpid()}"
    probe.write_text("")
    probe.unlink()


def write_json_atomic(path: Path, data: dict) -> None:
    """Write via a temporary file and rename, so a kill never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
