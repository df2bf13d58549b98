"""What a video run did: frames, rates, seconds per stage, the notes, and (when measured) the warping errors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Flicker:
    """Warping errors (Lai et al., 0-1 scale, lower is steadier) per frame pair, from frame 1 on, and the PSNR of
    the written frames against the frame-by-frame cartoons."""

    input: list[float] = field(default_factory=list)
    frame_by_frame: list[float] = field(default_factory=list)
    output: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)

    @staticmethod
    def _mean(values: list[float]) -> float:
        kept = [v for v in values if not math.isnan(v)]
        return sum(kept) / len(kept) if kept else float("nan")

    @property
    def input_mean(self) -> float:
        return self._mean(self.input)

    @property
    def frame_by_frame_mean(self) -> float:
        return self._mean(self.frame_by_frame)

    @property
    def output_mean(self) -> float:
        return self._mean(self.output)

    @property
    def psnr_mean(self) -> float:
        """Mean over frames; frames the smoothing left unchanged count as 100 dB rather than infinity."""
        return self._mean([min(p, 100.0) for p in self.psnr])

    def describe(self) -> str:
        return (f"warping error: input {self.input_mean:.4f}, frame by frame {self.frame_by_frame_mean:.4f} "
                f"({self.frame_by_frame_mean / self.input_mean:.2f}x input), written {self.output_mean:.4f} "
                f"({self.output_mean / self.input_mean:.2f}x input); PSNR written vs frame by frame "
                f"{self.psnr_mean:.1f} dB")


@dataclass
class VideoSummary:
    """The result of :func:`~cartoonkit.video.cartoonize_video`."""

    src: str
    dst: str | None                  # None when stopped before the end (nothing was written)
    frames: int
    width: int                       # of the written frames (before padding to even sides)
    height: int
    clip_fps: float                  # the source's average frame rate
    seconds: float                   # wall time, opening to the renamed file
    stages: dict[str, float]         # seconds per stage, summed over frames (stages overlap in time)
    temporal: float
    cuts: int = 0
    notes: list[str] = field(default_factory=list)
    flicker: Flicker | None = None
    stopped: bool = False

    @property
    def fps(self) -> float:
        """Frames processed per second of wall time, end to end."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def per_frame_ms(self, stage: str) -> float:
        return 1000.0 * self.stages.get(stage, 0.0) / max(self.frames, 1)

    def describe(self) -> str:
        stages = ", ".join(f"{name} {self.per_frame_ms(name):.1f}" for name in self.stages)
        where = self.dst if self.dst else "nothing written (stopped)"
        lines = [f"{self.frames} frames {self.width}x{self.height} in {self.seconds:.1f} s ({self.fps:.2f} fps; "
                 f"clip {self.clip_fps:.3g} fps) -> {where}",
                 f"ms per frame by stage (they overlap): {stages}",
                 f"temporal smoothing {self.temporal:g}" + (f", {self.cuts} scene cut(s)" if self.temporal else "")]
        if self.flicker is not None:
            lines.append(self.flicker.describe())
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)
