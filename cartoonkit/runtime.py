"""Process-wide torch switches, set in this one place rather than as side effects of building an engine.

:class:`~cartoonkit.pipeline.Cartoonizer` calls :func:`configure_torch` when it is made (so API users get
it too); the folder runner's worker processes call it with their share of the CPU threads.
"""

from __future__ import annotations

import torch

COMPILED_SHAPES = 64
"""torch.compile falls back to eager after 8 shapes by default; with 64-px buckets a folder of portraits
at 1024 px needs at most 32 (two orientations), so this limit is never the reason for a slow run."""


def configure_torch(device: torch.device, *, compiled: bool = False, threads: int | None = None) -> None:
    """For a ``compiled`` engine, raise dynamo's recompile limit to :data:`COMPILED_SHAPES`; on CUDA let cuDNN
    autotune (shapes repeat thanks to the buckets); if given, set the CPU threads of this process. Idempotent.

    Dynamo is only imported for compiled engines: importing it costs about 1.5 s of start-up."""
    if compiled:
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, COMPILED_SHAPES)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if threads is not None:
        torch.set_num_threads(threads)
