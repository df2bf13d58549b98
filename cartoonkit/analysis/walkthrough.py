"""From the naive pipeline to the fast one, one step at a time, each step measured (notebook 05).

:func:`run_walkthrough` times, in one process on the same photos, the path a photo takes from a JPEG
file to a PNG file as each optimisation is switched on in turn, with the functions of
:mod:`cartoonkit.bench.run` (the naive pipeline of :mod:`cartoonkit.bench.peers`, ``bench_end_to_end`` for the
engine switches of :data:`cartoonkit.bench.variants.VARIANTS`) and :func:`cartoonkit.folder.run_folder` for the
pipelined folder runner. Every row says what was timed *before* and *after* its step, so each gain is
measured, not inferred. The GPU-only steps (nvJPEG codecs, CUDA graphs) are measured on their own,
before and after, and are reported as skipped without a CUDA device.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..bench.run import bench_end_to_end, bench_model
from ..bench.variants import VARIANTS
from ..config import DEFAULT_MODEL, CartoonConfig
from ..engine import resolve_device
from ..fileio import write_atomic
from ..imageio import read_image
from ..options import EngineOptions
from ..pipeline import Cartoonizer
from ..samples import sample_photos
from ..timing import median_seconds

END_TO_END = "end to end: JPEG file in, PNG file out, ms per photo"

# Why each step helps, one sentence each (what the notebook prints beside the measurement).
WHY: dict[str, str] = {
    "naive": "The starting point: what a demo script does (PIL decode and bicubic resize, float32 NumPy "
             "conversions, the network eager in float32 in contiguous NCHW, one photo at a time, PIL encode).",
    "decode path": "cartoonkit decodes once into a uint8 tensor and resizes with torch's antialiased kernel, "
                   "converting to float only at the network's input, so less memory is touched per photo.",
    "channels_last": "Convolution libraries (oneDNN, cuDNN) work natively in NHWC; in NCHW every convolution "
                     "pays for layout conversions of its input and output.",
    "reduced precision": "bfloat16 (CPUs with AVX-512 BF16/AMX) or float16 (CUDA) halves the bytes moved and "
                         "doubles the arithmetic per instruction; the guided filter stays in float32.",
    "compile": "torch.compile fuses the element-wise work around the convolutions (activations, residual "
               "adds, the guided filter's arithmetic) into fewer kernels with fewer memory round trips.",
    "batching and shape buckets": "Padding photos up to a shared bucket shape lets several run in one engine "
                                  "call, which amortises per-call overhead and keeps the cores busy on "
                                  "larger matrices.",
    "pipelined I/O": "Reader and writer threads decode and encode while the network runs, so file I/O and "
                     "codecs hide behind the network instead of adding to it.",
    "int8 (CPU)": "On a CPU without AMX, AVX-512 VNNI multiply-adds int8 at twice the bfloat16 rate; the "
                  "convolutions are quantized once (static scales calibrated on fixed photos), about 45 dB "
                  "from float32.",
    "GPU codecs": "nvJPEG decodes and encodes JPEGs on the GPU, in batches, so the CPU stops being the "
                  "bottleneck in front of a fast GPU and the pixels cross PCIe compressed.",
    "CUDA graphs": "A CUDA graph replays the whole network's kernel launches as one, removing the per-kernel "
                   "launch cost that dominates small batches on a fast GPU.",
}
STEPS = tuple(WHY)
GPU_STEPS = ("GPU codecs", "CUDA graphs")


@dataclass
class StepRow:
    step: str
    measured: str            # what was timed, before and after
    before_ms: float | None  # ms per photo before this step (the previous step's result, end to end)
    after_ms: float | None   # ms per photo with this step
    gain: float | None       # before / after: 1.5 = this step made it 1.5x faster
    vs_naive: float | None   # naive / after, for end-to-end steps
    status: str              # "measured", or why it was skipped
    detail: str              # settings of this step
    why: str


def photo_files(count: int) -> list[Path]:
    """``count`` real photos, cycled when there are fewer: the portraits of ``../shared/images`` first (portrait
    shapes that share a 64-pixel bucket, as photos from one camera do), then scikit-image's astronaut."""
    photos = sample_photos()
    photos = photos[1:] + photos[:1]  # sample_photos() starts with the astronaut
    return [photos[i % len(photos)] for i in range(count)]


def _copy_inputs(files: Sequence[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        shutil.copyfile(f, folder / f"{i:03d}{f.suffix}")


def naive_ms(model: str, files: Sequence[Path], resolution: int, repeats: int, device: torch.device) -> float:
    """:class:`~cartoonkit.bench.peers.NaivePipeline` file to file on ``device``, ms per photo (one warm-up pass)."""
    from ..bench.peers import NaivePipeline

    naive = NaivePipeline.from_model(model, device)
    with tempfile.TemporaryDirectory(prefix="cartoonkit-walk-") as tmp:
        def run_all():
            for i, f in enumerate(files):
                naive.process_file(f, Path(tmp) / f"{i}.png", resolution)

        return 1e3 * median_seconds(run_all, repeats, device) / len(files)


def batched_ms(cartoonizer: Cartoonizer, files: Sequence[Path], resolution: int, repeats: int,
               max_batch: int) -> float:
    """File to file with :meth:`~cartoonkit.pipeline.Cartoonizer.process_many` (photos of one bucket shape
    share engine calls, up to ``max_batch``), decode and encode in the calling thread; ms per photo."""
    config = CartoonConfig(resolution=resolution, format="png")
    with tempfile.TemporaryDirectory(prefix="cartoonkit-walk-") as tmp:
        def run_all():
            decoded = [read_image(f) for f in files]
            for i, result in enumerate(cartoonizer.process_many(decoded, config, max_batch=max_batch)):
                write_atomic(Path(tmp) / f"{i}.png", result.encode(config.format, config.quality))

        return 1e3 * median_seconds(run_all, repeats, cartoonizer.device) / len(files)


def pipelined_ms(cartoonizer: Cartoonizer, files: Sequence[Path], resolution: int, repeats: int, batch_size: int,
                 format: str = "png") -> tuple[float, dict]:
    """:func:`~cartoonkit.folder.run_folder` on a folder of copies of ``files`` (reader and writer threads
    around the engine); ms per photo, and the last run's report as JSON."""
    from ..folder import run_folder

    config = CartoonConfig(resolution=resolution, format=format)
    reports = []
    with tempfile.TemporaryDirectory(prefix="cartoonkit-walk-") as tmp:
        _copy_inputs(files, Path(tmp) / "in")
        runs = iter(range(repeats + 1))

        def run_all():
            reports.append(run_folder(Path(tmp) / "in", Path(tmp) / f"out{next(runs)}", config,
                                     cartoonizer=cartoonizer, batch_size=batch_size, progress=False,
                                     echo=lambda _: None))

        seconds = median_seconds(run_all, repeats, cartoonizer.device)
    return 1e3 * seconds / len(files), reports[-1].to_json()


def codec_ms(files: Sequence[Path], device: str | torch.device = "cuda", repeats: int = 3,
             quality: int = 95) -> dict[str, float]:
    """JPEG decode and encode, ms per photo, with Pillow on the CPU and with nvJPEG on ``device`` (CUDA)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    from ..imageencode import encode_image

    device = torch.device(device)
    data = [torch.frombuffer(bytearray(Path(f).read_bytes()), dtype=torch.uint8) for f in files]
    images = [read_image(f).rgb for f in files]
    cpu = torch.device("cpu")
    gpu_images = [im.to(device) for im in images]
    n = len(files)
    return {
        "decode_cpu_ms": 1e3 * median_seconds(lambda: [read_image(f) for f in files], repeats, cpu) / n,
        "decode_gpu_ms": 1e3 * median_seconds(lambda: decode_jpeg(data, device=device), repeats, device) / n,
        "encode_cpu_ms": 1e3 * median_seconds(lambda: [encode_image(im, format="jpg", quality=quality)
                                                      for im in images], repeats, cpu) / n,
        "encode_gpu_ms": 1e3 * median_seconds(lambda: [t.cpu() for t in encode_jpeg(gpu_images, quality=quality)],
                                              repeats, device) / n,
    }


def cuda_graph_cartoonizer(model: str, device: torch.device) -> Cartoonizer:
    """A compiled, reduced-precision Cartoonizer whose network replays as a CUDA graph
    (``torch.compile(mode="reduce-overhead")``, through ``EngineOptions.cuda_graphs``)."""
    return Cartoonizer.from_pretrained(model, device,
                                       engine_options=EngineOptions(precision="auto", cuda_graphs=True))


def _row(step: str, measured: str, before: float | None, after: float | None, naive: float | None,
         detail: str, status: str = "measured") -> StepRow:
    gain = before / after if before and after else None
    vs_naive = naive / after if naive and after and measured == END_TO_END else None
    return StepRow(step, measured, before, after, gain, vs_naive, status, detail, WHY[step])


def run_walkthrough(files: Sequence[Path], resolution: int, repeats: int = 1, *, compile: bool = True,
                    batch_size: int = 4, bucket: int = 64, device: str | torch.device = "auto",
                    model: str = DEFAULT_MODEL, gpu_steps: bool = True,
                    echo: Callable[[str], None] | None = print) -> list[dict]:
    """Measure every step of :data:`STEPS` in order; one dict (:class:`StepRow` fields) per step.

    ``compile=False`` skips the compile step (its row says so) and leaves compilation off in the
    later steps. The GPU steps run only on a CUDA device (``gpu_steps``), otherwise their rows say
    they were skipped. ``echo`` gets one line per finished step (``None``: quiet).
    """
    say = echo or (lambda _: None)
    dev = resolve_device(device)
    files = [Path(f) for f in files]
    rows: list[StepRow] = []

    def add(row: StepRow) -> float | None:
        rows.append(row)
        say(f"{row.step}: " + (f"{row.after_ms:.1f} ms" if row.after_ms is not None else row.status))
        return row.after_ms

    start = time.perf_counter()
    naive = add(_row("naive", END_TO_END, None, naive_ms(model, files, resolution, repeats, dev), None,
                     f"NaivePipeline on {dev}, float32, batch 1"))
    previous = naive
    engine_steps = [("decode path", "eager-fp32"), ("channels_last", "channels_last-fp32"),
                    ("reduced precision", "channels_last-reduced"), ("compile", "compiled-reduced")]
    for step, variant in engine_steps:
        if step == "compile" and not compile:
            add(_row(step, END_TO_END, None, None, naive, variant,
                     status="skipped: compile=False (quick mode: compiling takes minutes on a small CPU)"))
            continue
        ck = Cartoonizer.from_pretrained(model=model, device=dev, engine_options=VARIANTS[variant])
        after = bench_end_to_end(ck, variant, files, resolution, repeats).ms_per_image
        detail = f"{variant}, {ck.engine.precision}"
        previous = add(_row(step, END_TO_END, previous, after, naive, detail))
        del ck

    options = EngineOptions(precision="auto", compile=compile, bucket=bucket)
    ck = Cartoonizer.from_pretrained(model=model, device=dev, engine_options=options)
    after = batched_ms(ck, files, resolution, repeats, batch_size)
    previous = add(_row("batching and shape buckets", END_TO_END, previous, after, naive,
                        f"process_many, up to {batch_size} per call, bucket {bucket} px"))
    after, report = pipelined_ms(ck, files, resolution, repeats, batch_size)
    previous = add(_row("pipelined I/O", END_TO_END, previous, after, naive,
                        f"run_folder, batch {batch_size}, {report['batch_size']} per call, "
                        f"{len(report['devices'])} process(es)"))
    del ck

    if dev.type == "cpu" and compile:
        ck = Cartoonizer.from_pretrained(model, dev, engine_options=EngineOptions(precision="int8", bucket=bucket))
        after, report = pipelined_ms(ck, files, resolution, repeats, batch_size)
        add(_row("int8 (CPU)", END_TO_END, previous, after, naive,
                 f"run_folder as above, int8 convolutions, {report['batch_size']} per call"))
        del ck
    else:
        reason = "skipped: int8 is for CPUs" if dev.type != "cpu" else \
            "skipped: compile=False (int8 compiles once per shape)"
        add(_row("int8 (CPU)", END_TO_END, None, None, naive, "", status=reason))

    if dev.type == "cuda" and gpu_steps:
        codecs = codec_ms(files, dev, max(repeats, 1))
        add(_row("GPU codecs", "JPEG decode + encode only, ms per photo",
                 codecs["decode_cpu_ms"] + codecs["encode_cpu_ms"], codecs["decode_gpu_ms"] + codecs["encode_gpu_ms"],
                 None, "Pillow on the CPU -> nvJPEG (torchvision.io) on the GPU"))
        photo = read_image(files[0]).rgb
        compiled = Cartoonizer.from_pretrained(model=model, device=dev, engine_options=VARIANTS["compiled-reduced"])
        before = bench_model(compiled, "compiled-reduced", photo, resolution, 1, max(repeats, 3), None).ms_per_image
        del compiled
        graphs = cuda_graph_cartoonizer(model, dev)
        after = bench_model(graphs, "cuda-graphs", photo, resolution, 1, max(repeats, 3), None).ms_per_image
        add(_row("CUDA graphs", f"network alone, batch 1, {resolution}x{resolution}, ms per photo", before, after,
                 None, "torch.compile -> torch.compile(mode='reduce-overhead')"))
    else:
        reason = "skipped: needs a CUDA GPU" if dev.type != "cuda" else "skipped: gpu_steps=False"
        for step in GPU_STEPS:
            add(_row(step, "", None, None, None, "", status=reason))
    say(f"walkthrough measured in {time.perf_counter() - start:.1f} s")
    return [asdict(r) for r in rows]


def markdown_table(rows: Sequence[dict]) -> str:
    """The walkthrough as a Markdown table (for ``IPython.display.Markdown`` or a README)."""
    def num(value, fmt):
        return "" if value is None else format(value, fmt)

    lines = ["| step | what was timed | before (ms) | after (ms) | gain | vs naive | settings | status |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['step']} | {r['measured']} | {num(r['before_ms'], '.1f')} | {num(r['after_ms'], '.1f')} "
                     f"| {num(r['gain'], '.2f')}{'x' if r['gain'] else ''} "
                     f"| {num(r['vs_naive'], '.2f')}{'x' if r['vs_naive'] else ''} | {r['detail']} | {r['status']} |")
    return "\n".join(lines)


def gain_chart(rows: Sequence[dict]):
    """A plotly figure: end-to-end ms per photo after each measured step (bars), each bar labelled with
    that step's gain; GPU steps measured on their own (codecs, CUDA graphs) are a second panel."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    measured = [r for r in rows if r["after_ms"] is not None]
    path = [r for r in measured if r["measured"] == END_TO_END]
    alone = [r for r in measured if r["measured"] != END_TO_END]
    figure = make_subplots(rows=1, cols=2 if alone else 1, column_widths=[0.7, 0.3] if alone else None,
                           subplot_titles=["end to end, ms per photo"] + (["GPU-only steps, measured alone"]
                                                                         if alone else []))

    def labels(items):
        return [f"{r['gain']:.2f}x" if r["gain"] else "" for r in items]

    figure.add_trace(go.Bar(x=[r["step"] for r in path], y=[r["after_ms"] for r in path], text=labels(path),
                            textposition="outside", name="after the step"), row=1, col=1)
    if alone:
        figure.add_trace(go.Bar(x=[r["step"] for r in alone], y=[r["before_ms"] for r in alone], name="before"),
                         row=1, col=2)
        figure.add_trace(go.Bar(x=[r["step"] for r in alone], y=[r["after_ms"] for r in alone], text=labels(alone),
                                textposition="outside", name="after"), row=1, col=2)
    figure.update_yaxes(title_text="ms per photo", row=1, col=1)
    figure.update_layout(title="From the naive pipeline to the fast one: each step and its gain", height=450,
                         showlegend=bool(alone))
    return figure


def summary(rows: Sequence[dict]) -> str:
    """What the measured rows say, in sentences built from the numbers (for the notebook's verdict)."""
    path = [r for r in rows if r["measured"] == END_TO_END and r["after_ms"] is not None]
    if not path:
        return "nothing was measured"
    naive, last = path[0], path[-1]
    lines = [f"naive pipeline {naive['after_ms']:.1f} ms per photo -> {last['after_ms']:.1f} ms after the last "
             f"measured step ({last['step']}): {naive['after_ms'] / last['after_ms']:.2f}x end to end."]
    fastest = min(path, key=lambda r: r["after_ms"])
    if fastest is not last:
        lines.append(f"fastest end to end in this run: after {fastest['step']}, {fastest['after_ms']:.1f} ms per photo "
                     f"({naive['after_ms'] / fastest['after_ms']:.2f}x the naive pipeline).")
    steps = [r for r in rows if r["gain"] is not None]
    if steps:
        best = max(steps, key=lambda r: r["gain"])
        lines.append(f"largest single gain: {best['step']} ({best['gain']:.2f}x, {best['measured']}).")
        slower = [r["step"] for r in steps if r["gain"] < 1]
        if slower:
            lines.append(f"no gain in this run (slower after the step): {', '.join(slower)}.")
    skipped = [f"{r['step']} ({r['status'].removeprefix('skipped: ')})" for r in rows if r["status"] != "measured"]
    if skipped:
        lines.append(f"not measured here: {'; '.join(skipped)}.")
    return "\n".join(lines)
