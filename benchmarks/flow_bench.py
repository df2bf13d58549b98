"""Flow on the device (issue 24) in BENCHMARKS.md: cartoonkit.video.device_flow against OpenCV's DIS (fast, the
smoother's preset, and medium, the metric's), speed and accuracy at the smoother's flow size for a 1080p video
(FLOW_SCALE 0.5: 960x540).

    .venv/bin/python benchmarks/flow_bench.py [--device cpu|cuda] [--json benchmarks/device-flow-epyc.json]

Speed: one frame pair per call and a batch of 4 pairs per call, the fastest of ``--repeats`` interleaved runs (a
neighbour's load only ever adds time). On CUDA the clock stops after torch.cuda.synchronize().
Accuracy: the median end-point error against a known motion (a photo from ../shared/images moved by cv2.warpAffine:
a sub-pixel shift, a larger shift, a 2-degree rotation with a 2 % zoom), inside a 16-pixel margin; and on the real
clip (../shared/videos/dct_input.mp4, its 720p frames upscaled to 1080p then halved, as the smoother would see a
1080p clip), the mean absolute grey difference between a frame and the next one pulled back by the flow
(cv2.remap), every ``--step``-th pair.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from cartoonkit import paths
from cartoonkit.video import device_flow

CLIP = paths.shared_dir() / "videos" / "dct_input.mp4"
PHOTO = paths.shared_dir() / "images" / "wb_london1.jpg"
SIZE = (960, 540)  # 1920x1080 at FLOW_SCALE 0.5
PRESETS = {"dis_fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "dis_medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
OURS = {"torch_full": {}, "torch_half": {"finest": 1}}  # finest=1: computed at half size as DIS medium


def clip_frames() -> list[np.ndarray]:
    import av

    with av.open(str(CLIP)) as container:
        frames = [cv2.cvtColor(f.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY) for f in container.decode(video=0)]
    # As the smoother: the 1080p frame (here the 720p clip upscaled) shrunk by FLOW_SCALE with INTER_AREA.
    return [cv2.resize(cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_LINEAR), SIZE, interpolation=cv2.INTER_AREA)
            for f in frames]


def known_motions() -> dict[str, np.ndarray]:
    grey = cv2.imread(str(PHOTO), cv2.IMREAD_GRAYSCALE)
    scale = max(SIZE[0] / grey.shape[1], SIZE[1] / grey.shape[0])
    grey = cv2.resize(grey, (round(grey.shape[1] * scale), round(grey.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    photo = np.ascontiguousarray(grey[:SIZE[1], :SIZE[0]])
    rotation = cv2.getRotationMatrix2D((SIZE[0] / 2, SIZE[1] / 2), 2.0, 1.02).astype(np.float32)
    return photo, {"subpixel_shift": np.float32([[1, 0, 1.3], [0, 1, -0.7]]),
                   "larger_shift": np.float32([[1, 0, 7.6], [0, 1, 3.2]]), "rotation_zoom": rotation}


def flows(prev: np.ndarray, next_: np.ndarray, device: str) -> dict[str, np.ndarray]:
    out = {name: cv2.DISOpticalFlow_create(preset).calc(prev, next_, None) for name, preset in PRESETS.items()}
    a = torch.from_numpy(prev)[None, None].to(device)
    b = torch.from_numpy(next_)[None, None].to(device)
    for name, options in OURS.items():
        out[name] = device_flow.dense_flow(a, b, **options)[0].permute(1, 2, 0).cpu().numpy()
    return out


def accuracy(frames: list[np.ndarray], step: int, device: str) -> dict:
    photo, motions = known_motions()
    height, width = photo.shape
    x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    epe = {}
    for motion, matrix in motions.items():
        moved = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        true = np.stack([matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2] - x,
                         matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2] - y], -1)
        for name, flow in flows(photo, moved, device).items():
            error = np.sqrt(((flow - true) ** 2).sum(-1))[16:-16, 16:-16]
            epe.setdefault(name, {})[motion] = float(np.median(error))
    photometric = {}
    for i in range(0, len(frames) - 1, step):
        prev, next_ = frames[i], frames[i + 1]
        found = flows(prev, next_, device)
        found["no_motion"] = np.zeros_like(found["dis_fast"])
        for name, flow in found.items():
            back = cv2.remap(next_.astype(np.float32), x + flow[..., 0], y + flow[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
            photometric.setdefault(name, []).append(float(np.abs(back - prev)[8:-8, 8:-8].mean()))
    pairs = len(photometric["dis_fast"])
    return {"epe_median_px": epe, "photometric_mean": {k: float(np.mean(v)) for k, v in photometric.items()},
            "photometric_pairs": pairs}


def speed(frames: list[np.ndarray], repeats: int, device: str) -> dict:
    pairs = [(frames[i], frames[i + 1]) for i in (10, 40, 75, 110)]
    batch_prev = torch.stack([torch.from_numpy(p) for p, _ in pairs])[:, None].to(device)
    batch_next = torch.stack([torch.from_numpy(n) for _, n in pairs])[:, None].to(device)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def ours(options, batch):
        count = batch_prev.shape[0] if batch else 1
        began = time.perf_counter()
        device_flow.dense_flow(batch_prev[:count], batch_next[:count], **options)
        sync()
        return (time.perf_counter() - began) / count

    def dis(preset):
        estimator = cv2.DISOpticalFlow_create(preset)
        began = time.perf_counter()
        for prev, next_ in pairs:
            estimator.calc(prev, next_, None)
        return (time.perf_counter() - began) / len(pairs)

    runs = {}
    jobs = {name: (lambda p=preset: dis(p)) for name, preset in PRESETS.items()}
    for name, options in OURS.items():
        jobs[name] = lambda o=options: ours(o, False)
        jobs[name + "_batch4"] = lambda o=options: ours(o, True)
    for job in jobs.values():  # warm-up: first-call costs (allocation, kernels) are not the steady state
        job()
    for _ in range(repeats):
        for name, job in jobs.items():
            runs.setdefault(name, []).append(1000 * job())
    fastest = {name: min(v) for name, v in runs.items()}
    return {"ms_per_pair": fastest, "runs_ms": runs,
            "ratio_to_dis_fast": {k: v / fastest["dis_fast"] for k, v in fastest.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", type=int, default=5, help="every step-th pair of the clip for the photometric error")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    frames = clip_frames()
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "opencv_threads": cv2.getNumThreads(),
              "device": args.device, "flow_size": list(SIZE), "torch": torch.__version__, "opencv": cv2.__version__,
              "load_average_before": os.getloadavg()[0]}
    result["speed"] = speed(frames, args.repeats, args.device)
    print(json.dumps(result["speed"]["ms_per_pair"], indent=1), flush=True)
    result["accuracy"] = accuracy(frames, args.step, args.device)
    result["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(result["accuracy"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
