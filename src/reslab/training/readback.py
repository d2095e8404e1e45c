"""`Readback`: a device tensor's value brought to the host without stalling the GPU's stream.

``tensor.cpu()`` on a CUDA tensor waits until every kernel queued before it has run: the host stops queueing the
next steps and the GPU then idles while the host catches up. The instruments and the divergence guard need
their numbers, but not this very step, so they start a copy into pinned host memory behind a CUDA event and
read it at a later step, once the event has passed (`ready`), or wait for it where the value must be final (the
end of training, a checkpoint). On a CPU the copy is already on the host and is ready at once, so the same code
reads it in the step that asked for it.

torch offers the pieces (pinned memory, non-blocking copies, events) but no object that holds them together.
"""

from __future__ import annotations

import torch


class Readback:
    """The host copy of ``tensor`` (detached), started now; `ready` says whether it can be read without waiting."""

    def __init__(self, tensor: torch.Tensor):
        tensor = tensor.detach()
        if tensor.is_cuda:
            self._host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            self._host.copy_(tensor, non_blocking=True)
            self._event: torch.cuda.Event | None = torch.cuda.Event()
            self._event.record()
        else:  # a copy, as on the GPU: the caller may change the tensor in place before it is read
            self._host = tensor.clone()
            self._event = None

    def ready(self) -> bool:
        return self._event is None or self._event.query()

    def wait(self) -> torch.Tensor:
        """The host tensor, waiting for the copy if it has not arrived yet."""
        if self._event is not None:
            self._event.synchronize()
        return self._host
