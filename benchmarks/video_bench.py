"""The video figures in BENCHMARKS.md ("Video"): flicker and the smoothing's cost on ../shared/videos/dct_input.mp4,
and frames per second end to end (file in, file out) at several output sizes.

    .venv/bin/python benchmarks/video_bench.py quality [--json benchmarks/video-quality.json]
    .venv/bin/python benchmarks/video_bench.py overhead --end 2
    .venv/bin/python benchmarks/video_bench.py speed --sizes 640 1280 1920 --seconds 1 [--precision int8]

Runs are interleaved (frame by frame, smoothed, frame by frame, smoothed) so a neighbour's load on a shared
machine falls on both sides alike; the fastest run of each is reported (load only ever adds time).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cartoonkit import CartoonConfig, Cartoonizer, paths
from cartoonkit.video import cartoonize_video

CLIP = paths.shared_dir() / "videos" / "dct_input.mp4"


def quality(args) -> dict:
    ck = Cartoonizer.from_pretrained(device="cpu", precision=args.precision)
    config = CartoonConfig(resolution=args.resolution)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for strength in args.strengths:
            s = cartoonize_video(CLIP, Path(folder) / "m.mp4", config, cartoonizer=ck, temporal=strength,
                                 measure=True, end=args.end)
            f = s.flicker
            rows[strength] = {"frames": s.frames, "input": f.input_mean, "frame_by_frame": f.frame_by_frame_mean,
                              "written": f.output_mean, "psnr_db": f.psnr_mean, "cuts": s.cuts}
            print(f"strength {strength}: {f.describe()}", flush=True)
        # Wall time per frame, and the process's CPU time per frame: on a shared machine a neighbour's load moves
        # the first, while the second counts only this run's work (all its threads).
        timing = {0.0: [], args.default: []}
        cpu = {0.0: [], args.default: []}
        for _ in range(args.repeats):
            for strength in timing:
                began = time.process_time()
                s = cartoonize_video(CLIP, Path(folder) / "t.mp4", config, cartoonizer=ck, temporal=strength,
                                     end=args.end)
                cpu[strength].append((time.process_time() - began) / s.frames)
                timing[strength].append(s.seconds / s.frames)
                print(f"strength {strength}: {1000 * s.seconds / s.frames:.1f} ms/frame end to end, "
                      f"{1000 * cpu[strength][-1]:.1f} ms CPU/frame; {s.describe().splitlines()[1]}", flush=True)
    result = {"resolution": args.resolution, "precision": ck.engine.precision, "strengths": rows}
    if args.repeats:
        # The fastest of the interleaved repeats: a neighbour's load only ever adds time.
        off, on = min(timing[0.0]), min(timing[args.default])
        cpu_off, cpu_on = min(cpu[0.0]), min(cpu[args.default])
        print(f"fastest ms per frame: frame by frame {1000 * off:.1f}, smoothed {1000 * on:.1f} "
              f"({100 * (on / off - 1):+.1f} %); CPU ms per frame {1000 * cpu_off:.1f} and {1000 * cpu_on:.1f} "
              f"({100 * (cpu_on / cpu_off - 1):+.1f} %)")
        result["ms_per_frame"] = {"frame_by_frame": 1000 * off, "smoothed": 1000 * on,
                                  "cpu_frame_by_frame": 1000 * cpu_off, "cpu_smoothed": 1000 * cpu_on,
                                  "runs": {str(k): [1000 * x for x in v] for k, v in timing.items()},
                                  "cpu_runs": {str(k): [1000 * x for x in v] for k, v in cpu.items()}}
    return result


def overhead(args) -> dict:
    """The smoothing's cost against the network's, frame by frame in one thread, interleaved: a neighbour's load
    falls on both alike, so their ratio holds even on a busy machine (end to end the smoothing runs in the
    writer thread beside the network; on 2 cores it takes its CPU time from it)."""
    import av
    import cv2
    import numpy as np

    from cartoonkit.video import TemporalSmoother

    ck = Cartoonizer.from_pretrained(device="cpu", precision=args.precision)
    config = CartoonConfig(resolution=args.resolution)
    smoother = TemporalSmoother(args.default)
    network, smoothing = [], []
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            if args.end is not None and frame.time >= args.end:
                break
            rgb = frame.to_ndarray(format="rgb24")
            began = time.perf_counter()
            cartoon = ck(rgb, config)
            network.append(time.perf_counter() - began)
            began = time.perf_counter()
            photo = cv2.resize(rgb, (cartoon.shape[1], cartoon.shape[0]), interpolation=cv2.INTER_AREA)
            smoother(photo, np.ascontiguousarray(cartoon))
            smoothing.append(time.perf_counter() - began)
    net, smooth = float(np.median(network[1:])), float(np.median(smoothing[2:]))
    print(f"{len(network)} frames at {args.resolution} px, {ck.engine.precision}: photo chain {1000 * net:.1f} ms, "
          f"smoothing (with the input resize) {1000 * smooth:.1f} ms per frame (medians): {100 * smooth / net:+.1f} %")
    return {"resolution": args.resolution, "precision": ck.engine.precision, "frames": len(network),
            "chain_ms": 1000 * net, "smoothing_ms": 1000 * smooth, "chain_ms_min": 1000 * min(network[1:]),
            "smoothing_ms_min": 1000 * min(smoothing[2:])}


def speed(args) -> dict:
    ck = Cartoonizer.from_pretrained(device="cpu", precision=args.precision)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            config = CartoonConfig(resolution=size)
            cartoonize_video(CLIP, Path(folder) / "w.mp4", config, cartoonizer=ck, end=0.2)  # first-shape costs
            s = cartoonize_video(CLIP, Path(folder) / "s.mp4", config, cartoonizer=ck, end=args.seconds)
            rows[size] = {"frames": s.frames, "width": s.width, "height": s.height, "fps": s.fps,
                          "ms_per_frame_by_stage": {k: s.per_frame_ms(k) for k in s.stages}}
            print(f"{s.width}x{s.height} {ck.engine.precision}: {s.fps:.2f} fps end to end; "
                  f"{s.describe().splitlines()[1]}", flush=True)
    return {"precision": ck.engine.precision, "sizes": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["quality", "overhead", "speed"])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--strengths", type=float, nargs="*", default=[0.8], help="flicker rows (none: skip)")
    parser.add_argument("--default", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--end", type=float, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 1280, 1920])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--precision", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = {"quality": quality, "overhead": overhead, "speed": speed}[args.what](args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
