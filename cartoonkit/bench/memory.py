"""Peak memory of a block of code, on CUDA and on Linux CPUs (the benchmark's model rows)."""

from __future__ import annotations

from pathlib import Path

import torch


class PeakMemory:
    """Peak memory in MB that a block of code needs above what the process held when it started.

    CUDA: the largest ``torch.cuda.max_memory_allocated`` reached inside the block, minus the memory
    allocated at its start (tensors only: not the caching allocator's reserve, not the CUDA context).
    CPU: the process's peak resident set size (``VmHWM`` in ``/proc/self/status``, whose high-water
    mark is reset at the start by writing ``5`` to ``/proc/self/clear_refs``) minus the resident size at
    the start. Freed heap memory is first handed back to the system (glibc ``malloc_trim``) so that
    memory kept from earlier work is not reused unseen; what is counted is every page touched
    (activations, input, oneDNN scratch, libraries loaded on the first call), not just tensors.
    ``mb`` stays ``None`` where neither applies (other devices; a CPU without ``/proc``, i.e. not Linux).
    """

    def __init__(self, device: torch.device):
        self.device, self.mb = device, None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.device.type == "cpu":
            _malloc_trim()
            self._start = _resident_kb("VmRSS")
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self._start = None
        else:  # other accelerators: not measured
            self._start = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2 ** 20
        elif self._start is not None and (peak := _resident_kb("VmHWM")) is not None:
            self.mb = (peak - self._start) / 1024


def _malloc_trim() -> None:
    """Return the C heap's free memory to the system (glibc only; a no-op elsewhere)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _resident_kb(field: str) -> int | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process in kB, ``None`` if unreadable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None
