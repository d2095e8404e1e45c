"""Lightning's checkpoints, written atomically beside their target and read without running code.

Lightning's own writer goes through an fsspec transaction whose temporary file lives in ``$TMPDIR``; where that
is another filesystem (a tmpfs ``/tmp``, a cluster's local scratch) the final move copies into the existing
``last.ckpt`` in place, so a full disk or a kill truncates the previous checkpoint. `AtomicCheckpointIO` writes
through `reslab.files.write_atomic` instead. Checkpoints hold only tensors and plain containers, so they are
read with ``weights_only=True``: a crafted file cannot execute code, and is refused with one line.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from reslab.errors import UserError
from reslab.files import write_atomic


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """A checkpoint's contents; a `UserError` if it is unreadable or holds anything but tensors and containers."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):  # not a class or function reference: just damaged bytes
            raise UserError(
                f"checkpoint {path} cannot be read (corrupt); delete it to start over, or pass another "
                f"with resume=<path>"
            ) from None
        detail = " ".join(str(e).split("WeightsUnpickler error:")[-1].split()).split(" was not an allowed")[0]
        raise UserError(
            f"checkpoint {path} holds more than tensors and plain containers, so it is not loaded "
            f"(it could run code): {detail}; use a checkpoint written by reslab"
        ) from None
    except Exception as e:
        raise UserError(
            f"checkpoint {path} cannot be read ({type(e).__name__}); it is corrupt or not a reslab "
            f"checkpoint: delete it to start over, or pass another with resume=<path>"
        ) from None


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = io.BytesIO()  # serialised first: torch's zip writer turns a full disk into an opaque RuntimeError
        torch.save(checkpoint, data)
        try:
            write_atomic(path, lambda f: f.write(data.getbuffer()))
        except OSError as e:
            raise UserError(
                f"cannot write checkpoint {path} ({e.strerror or e}); the previous checkpoint is "
                f"intact: free space (or fix the folder) and rerun the same command to resume"
            ) from None

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(path, map_location)
