"""The measurements: ms per image for the network alone and end to end (JPEG file in, PNG file out).

Every row of one run is measured in the same process on the same photos, so rows compare with
each other; absolute times only mean something on a named, otherwise idle machine. Each engine
switch is its own variant (:data:`~cartoonkit.bench.variants.VARIANTS`), so the table shows what
each optimisation buys. Results follow :mod:`cartoonkit.bench.results`.

Every model row carries its achieved TFLOP/s (the network's own GFLOP per image, :func:`conv_flops`, over its ms
per image) and, when the run measured the device's peak (:mod:`cartoonkit.bench.peak`, on by default), its share of
the peak of its precision: :func:`annotate_rates`.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
from pathlib import Path

import torch

from ..config import DEFAULT_MODEL, CartoonConfig
from ..engine import resolve_device
from ..hardware import cpu_flags
from ..imageio import read_image
from ..network import CartoonNetwork
from ..pipeline import Cartoonizer
from ..samples import sample_photos
from ..timing import median_seconds
from .images import psnr, square_photo
from .memory import PeakMemory
from .results import (
    BenchResult,
    BenchRow,
    CompoundRow,
    MachinePeak,
    achieved_tflops,
    format_table,
    save_json,
    share_of_peak,
)
from .variants import DEFAULT_VARIANTS, PEERS, VARIANTS


def conv_flops(height: int, width: int) -> int:
    """Multiply-adds x 2 of every convolution at ``height x width`` (the guided filter is negligible).

    Counted with hooks on a small forward pass and scaled: every layer's cost is proportional to
    the pixel count, as long as the size is a multiple of 4.
    """
    network, total = CartoonNetwork(), [0]

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        total[0] += 2 * module.in_channels * module.out_channels * k * output.shape[-2] * output.shape[-1]

    for m in network.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.inference_mode():
        network(torch.zeros(1, 3, 64, 64))
    return total[0] * (height * width) // (64 * 64)


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    flags = cpu_flags()
    features = ", ".join(f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads ({features})"


def gflop_per_image(resolutions: list[int]) -> dict[str, float]:
    """GFLOP of the network on a square image, per resolution (the result's ``gflop_per_image``)."""
    return {str(r): round(conv_flops(r, r) / 1e9, 1) for r in resolutions}


def row_device(variant: str, device: torch.device) -> str:
    """The device type a row of ``variant`` ran on: cartoonkit's variants on the bench's ``device``; the peers on the
    CPU, except TensorRT and ONNX Runtime's CUDA provider, which run on CUDA."""
    if variant in VARIANTS:
        return device.type
    return "cuda" if variant.startswith(("tensorrt", "onnxruntime-cuda")) else "cpu"


def annotate_rates(rows: list[BenchRow], peak: MachinePeak | None, device: torch.device) -> list[BenchRow]:
    """Set ``achieved_tflops`` on every model row (the network's GFLOP at the row's square size over its ms per
    image; :func:`conv_flops` scales with the pixel count, so any shape that is a multiple of 4 counts the same
    way) and ``share_of_peak`` on those that ran on the peak's device (:func:`row_device`), against the peak of the
    row's precision (:func:`~cartoonkit.bench.results.precision_key`: int8 rows against the int8 peak, ...).
    Padded variants count the network's own FLOP, not their zero channels. Returns ``rows``, changed in place."""
    gflop: dict[int, float] = {}
    for row in rows:
        if row.name != "model" or row.ms_per_image <= 0:
            continue
        if row.resolution not in gflop:
            gflop[row.resolution] = conv_flops(row.resolution, row.resolution) / 1e9
        row.achieved_tflops = achieved_tflops(gflop[row.resolution], row.ms_per_image)
        if peak is not None and row_device(row.variant, device) == peak.device:
            row.share_of_peak = share_of_peak(row.achieved_tflops, peak, row.precision)
    return rows


def bench_model(cartoonizer: Cartoonizer, variant: str, photo: torch.Tensor, resolution: int, batch: int,
                repeats: int, reference: torch.Tensor | None) -> BenchRow:
    engine = cartoonizer.engine
    with PeakMemory(engine.device) as memory:  # input, warm-up and timed runs
        x = square_photo(photo, resolution)[None].expand(batch, -1, -1, -1).contiguous().to(engine.device)
        out = engine(x[:1])
        seconds = median_seconds(lambda: engine(x), repeats, engine.device) / batch
    quality = psnr(out, reference) if reference is not None else None
    return BenchRow(variant, "model", resolution, batch, seconds * 1e3, 1 / seconds, cartoonizer.engine.precision,
                    quality, repeats, batch, peak_memory_mb=memory.mb)


def model_grid(cartoonizer: Cartoonizer, resolutions: list[int], batch_sizes: list[int], repeats: int = 3,
               variant: str = "as given") -> dict:
    """Throughput and peak memory of one warm ``cartoonizer``'s network over resolutions x batch sizes.

    :func:`bench_model` rows on the first sample photo, without the float32 quality reference that
    :func:`run_benchmarks` loads (``psnr_vs_fp32`` is ``None``). Returns the JSON object of a
    :class:`~cartoonkit.bench.results.BenchResult`, like :func:`run_benchmarks`, so :func:`format_table` prints it.
    """
    files = sample_photos()[:1]
    photo = read_image(files[0]).rgb
    rows = [bench_model(cartoonizer, variant, photo, r, b, repeats, None) for r in resolutions for b in batch_sizes]
    annotate_rates(rows, None, cartoonizer.engine.device)
    return BenchResult(machine=machine_description(cartoonizer.engine.device), torch=torch.__version__,
                       photos=[f.name for f in files], gflop_per_image=gflop_per_image(resolutions),
                       rows=rows).to_json()


def bench_end_to_end(cartoonizer: Cartoonizer, variant: str, files: list[Path], resolution: int,
                     repeats: int) -> BenchRow:
    """Decode, resize, network, blend, encode and atomic write for every file, one at a time."""
    config = CartoonConfig(resolution=resolution, format="png")
    with tempfile.TemporaryDirectory(prefix="cartoonkit-bench-") as tmp:
        def run_all():
            for i, f in enumerate(files):
                cartoonizer.cartoonize_file(f, Path(tmp) / f"{i}.png", config)

        seconds = median_seconds(run_all, repeats, cartoonizer.engine.device) / len(files)
    return BenchRow(variant, "end_to_end", resolution, 1, seconds * 1e3, 1 / seconds, cartoonizer.engine.precision,
                    None, repeats, len(files))


def _peer_row(runner, resolution: int, x, repeats: int, reference: torch.Tensor, precision: str) -> BenchRow:
    """One model-alone row of an NCHW peer on the input ``x`` (numpy), with its PSNR against float32."""
    from ..transforms import network_to_rgb_float

    seconds = median_seconds(lambda: runner.run(x), repeats, torch.device("cpu"))
    out = network_to_rgb_float(torch.from_numpy(runner.run(x)))
    return BenchRow(runner.name, "model", resolution, 1, seconds * 1e3, 1 / seconds, precision,
                    psnr(out, reference.cpu()), repeats, 1)


def _openvino_precision(runner) -> str:
    """What the OpenVINO runner actually ran (``INFERENCE_PRECISION_HINT`` of the compiled model)."""
    ran = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}.get(runner.inference_precision,
                                                                      str(runner.inference_precision))
    if runner.precision == "int8":
        return f"int8 (rest {ran})"
    if runner.precision == "bf16" and ran != "bfloat16":
        return f"{ran} (bf16 asked)"
    return ran


CPU_PEERS = ("onnxruntime", "openvino", "tflite")


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def bench_peers(model: str, photo: torch.Tensor, resolutions: list[int], repeats: int,
                references: dict[int, torch.Tensor], tflite_file: Path | None,
                echo=None, names=CPU_PEERS) -> tuple[list[BenchRow], dict]:
    """Model-alone rows of the other runtimes, each with its PSNR against eager float32.

    On our ONNX export (parity-checked against PyTorch at every resolution): ONNX Runtime float32 and int8
    (:class:`~cartoonkit.bench.peers.OnnxRuntimeInt8Runner`, with cartoonkit's float layers and with every
    convolution in int8), OpenVINO float32, bfloat16 and int8 (:class:`~cartoonkit.bench.peers.OpenVinoRunner`);
    then the TFLite interpreter (224 only); ``names`` picks among ``onnxruntime``, ``openvino`` and ``tflite``.
    A peer whose package is missing is skipped with one line through ``echo`` (default: stderr) naming the extra
    that installs it; the run goes on.
    """
    from ..errors import MissingDependencyError
    from ..export import export_onnx, verify_onnx
    from ..transforms import rgb_uint8_to_network
    from ..weights import load_network
    from .peers import OnnxRuntimeInt8Runner, OnnxRuntimeRunner, OpenVinoRunner, TFLiteRunner

    echo = echo or _stderr
    network, _ = load_network(model)
    rows, checks = [], {}
    inputs = {r: rgb_uint8_to_network(square_photo(photo, r)[None]).numpy() for r in resolutions}

    def measure(label: str, make, precision) -> None:
        try:
            runner = make()
            for resolution, x in inputs.items():
                row = _peer_row(runner, resolution, x, repeats, references[resolution], "")
                row.precision = precision(runner) if callable(precision) else precision  # known once it ran
                rows.append(row)
        except MissingDependencyError as exc:
            echo(f"skipping the {label} peer: {exc}")

    with tempfile.TemporaryDirectory(prefix="cartoonkit-onnx-") as tmp:
        onnx_path = None
        try:
            if {"onnxruntime", "openvino"} & set(names):
                onnx_path = export_onnx(network, Path(tmp) / "cartoon.onnx", dynamic=True)
        except MissingDependencyError as exc:
            echo(f"skipping the ONNX-based peers (ONNX Runtime, OpenVINO): {exc}")
        if onnx_path is not None and "onnxruntime" in names:
            try:
                for resolution, x in inputs.items():
                    checks[f"onnx_max_abs_diff_{resolution}"] = verify_onnx(onnx_path, network, torch.from_numpy(x))
            except MissingDependencyError as exc:
                echo(f"skipping the ONNX Runtime parity check: {exc}")
            measure("ONNX Runtime", lambda: OnnxRuntimeRunner(onnx_path), "float32")
            measure("ONNX Runtime int8", lambda: OnnxRuntimeInt8Runner(onnx_path), "int8 (conv0, conv8 float32)")
            measure("ONNX Runtime int8 (all convolutions)", lambda: OnnxRuntimeInt8Runner(onnx_path, float_layers=()),
                    "int8")
        if onnx_path is not None and "openvino" in names:
            for precision in ("fp32", "bf16", "int8"):
                measure(f"OpenVINO {precision}", lambda p=precision: OpenVinoRunner(onnx_path, p),
                        _openvino_precision)
    if tflite_file is not None and "tflite" in names:
        cpu = torch.device("cpu")
        try:
            tflite = TFLiteRunner(tflite_file)
        except MissingDependencyError as exc:
            echo(f"skipping the TFLite peer: {exc}")
        else:
            x = rgb_uint8_to_network(square_photo(photo, 224)[None]).permute(0, 2, 3, 1).contiguous().numpy()
            seconds = median_seconds(lambda: tflite.run(x), repeats, cpu)
            rows.append(BenchRow(tflite.name, "model", 224, 1, seconds * 1e3, 1 / seconds, "float32 (fp16 weights)",
                                 None, repeats, 1))
    return rows, checks


TENSORRT_SKIP = ("skipping the TensorRT peer: it runs on a CUDA device (cartoonkit bench --device cuda) with "
                 "torch-tensorrt; install it with: pip install 'cartoonkit[tensorrt]'")


def bench_tensorrt(model: str, photo: torch.Tensor, resolutions: list[int], batch_sizes: list[int], repeats: int,
                   references: dict[int, torch.Tensor], device: torch.device, echo=None) -> list[BenchRow]:
    """Model-alone rows of :class:`~cartoonkit.bench.peers.TensorRTRunner` (float16) per resolution and batch size,
    timed on the device like :func:`bench_model`, each with its PSNR against eager float32. Skipped with one line
    through ``echo`` (default: stderr) naming the extra when the device is not CUDA or torch-tensorrt is missing."""
    from ..errors import MissingDependencyError
    from ..transforms import network_to_rgb_float, rgb_uint8_to_network
    from ..weights import load_network
    from .peers import TensorRTRunner

    echo = echo or _stderr
    if device.type != "cuda":
        echo(TENSORRT_SKIP)
        return []
    network, _ = load_network(model)
    try:
        runner = TensorRTRunner(network, device)
    except MissingDependencyError as exc:
        echo(f"skipping the TensorRT peer: {exc}")
        return []
    rows = []
    for resolution in resolutions:
        one = rgb_uint8_to_network(square_photo(photo, resolution)[None]).to(device)
        out = network_to_rgb_float(runner.forward(one))
        quality = psnr(out, references[resolution])
        for batch in batch_sizes:
            with PeakMemory(device) as memory:
                x = one.expand(batch, -1, -1, -1).contiguous()
                seconds = median_seconds(lambda x=x: runner.forward(x), repeats, device) / batch
            rows.append(BenchRow(runner.name, "model", resolution, batch, seconds * 1e3, 1 / seconds,
                                 runner.precision, quality, repeats, batch, peak_memory_mb=memory.mb))
    return rows


def bench_batch_end_to_end(cartoonizer: Cartoonizer, variant: str, files: list[Path], resolution: int,
                           repeats: int) -> BenchRow:
    """``cartoonkit batch``: the pipelined folder path (overlapping read, decode, network, encode, write)."""
    import shutil

    from ..folder import run_folder

    config = CartoonConfig(resolution=resolution, format="png")
    with tempfile.TemporaryDirectory(prefix="cartoonkit-bench-") as tmp:
        in_dir = Path(tmp) / "in"
        in_dir.mkdir()
        for i, f in enumerate(files):
            shutil.copyfile(f, in_dir / f"{i:03d}{f.suffix}")
        runs = iter(range(repeats + 1))

        def run_all():
            run_folder(in_dir, Path(tmp) / f"out{next(runs)}", config, cartoonizer=cartoonizer, progress=False,
                       echo=lambda _: None)

        seconds = median_seconds(run_all, repeats, cartoonizer.engine.device) / len(files)
    return BenchRow(variant, "batch_end_to_end", resolution, 1, seconds * 1e3, 1 / seconds,
                    cartoonizer.engine.precision, None, repeats, len(files))


def bench_compound(cartoonizer: Cartoonizer, photos: dict[str, Path], resolution: int,
                   repeats: int) -> list[CompoundRow]:
    """Compound mode per photo (already decoded): ms in all, and the share of each stage."""
    rows = []
    for label, path in photos.items():
        decoded = read_image(path)
        config = CartoonConfig(resolution=resolution, mode="compound")
        cartoonizer.process(decoded, config)  # warm-up: detector and model loading
        runs = []
        for _ in range(repeats):
            result = cartoonizer.process(decoded, config)
            runs.append(result.timings)
        total = statistics.median(sum(t.values()) for t in runs)
        stages = {k: statistics.median(t.get(k, 0.0) for t in runs) for k in runs[0]}
        rows.append(CompoundRow(photo=path.name, faces=label, resolution=resolution, ms_per_photo=total * 1e3,
                                share={k: v / total for k, v in stages.items()}, notes=list(result.notes)))
    return rows


def bench_naive_end_to_end(model: str, files: list[Path], resolution: int, repeats: int) -> BenchRow:
    """The pipeline as commonly deployed (PIL decode, float32 eager, batch 1, PIL encode), file in, file out."""
    from .peers import NaivePipeline

    naive = NaivePipeline.from_model(model)
    with tempfile.TemporaryDirectory(prefix="cartoonkit-bench-") as tmp:
        def run_all():
            for i, f in enumerate(files):
                naive.process_file(f, Path(tmp) / f"{i}.png", resolution)

        seconds = median_seconds(run_all, repeats, torch.device("cpu"), warmup=0) / len(files)
    return BenchRow(naive.name, "end_to_end", resolution, 1, seconds * 1e3, 1 / seconds, "float32", None,
                    repeats, len(files))


def run_benchmarks(resolutions: list[int], repeats: int = 5, device: str = "auto", model: str = DEFAULT_MODEL,
                   output: Path | None = None, images: str | None = None, variants: list[str] | None = None,
                   batch_sizes: list[int] | None = None, end_to_end: bool = True, peers: bool | list[str] = False,
                   end_to_end_count: int | None = None, compound: dict[str, Path] | None = None,
                   print_table: bool = True, peak: bool = True, peak_sizes: dict | None = None) -> dict:
    """Every row asked for, printed as a table and written to ``output`` as JSON; returns that JSON object
    (:meth:`BenchResult.to_json <cartoonkit.bench.results.BenchResult.to_json>`).

    ``peers``: True (or an empty list) for every peer of :data:`~cartoonkit.bench.variants.PEERS`, or the names of
    some. ``peak``: measure the device's matmul peak and copy bandwidth after the rows
    (:func:`~cartoonkit.bench.peak.measure_peak`, keyword arguments ``peak_sizes``) and give each model row its share
    of it; every model row gets its achieved TFLOP/s either way."""
    files = sorted(Path(images).glob("*.jp*g")) if images else sample_photos()
    if end_to_end_count:  # e.g. "twenty 1024-pixel JPEGs": cycle through the photos we have
        files = [files[i % len(files)] for i in range(end_to_end_count)]
    photo = read_image(files[0]).rgb
    rows: list[BenchRow] = []
    # Eager float32 on the same device is the quality reference for every variant.
    reference = Cartoonizer.from_pretrained(model, device=device, engine_options=VARIANTS["eager-fp32"]).engine
    references = {r: reference(square_photo(photo, r)[None].to(reference.device)) for r in resolutions}
    del reference
    for variant in variants or DEFAULT_VARIANTS:
        cartoonizer = Cartoonizer.from_pretrained(model, device=device, engine_options=VARIANTS[variant])
        for resolution in resolutions:
            for batch in batch_sizes or [1]:
                rows.append(bench_model(cartoonizer, variant, photo, resolution, batch, repeats,
                                        references[resolution]))
            if end_to_end:
                rows.append(bench_end_to_end(cartoonizer, variant, files, resolution, max(1, repeats // 2)))
                rows.append(bench_batch_end_to_end(cartoonizer, variant, files, resolution, max(1, repeats // 2)))
    compound_rows: list[CompoundRow] = []
    if compound:
        last = (variants or DEFAULT_VARIANTS)[-1]
        cartoonizer = Cartoonizer.from_pretrained(model, device=device, engine_options=VARIANTS[last])
        for resolution in resolutions:
            compound_rows += bench_compound(cartoonizer, compound, resolution, repeats)
    checks: dict[str, float] = {}
    bench_device = resolve_device(device)
    chosen = set(PEERS if peers is True or peers == [] else peers or ())
    unknown = chosen - set(PEERS)
    if unknown:
        raise ValueError(f"unknown peers {sorted(unknown)}; known: {', '.join(PEERS)}")
    if chosen & set(CPU_PEERS):
        from ..weights.registry import KNOWN_MODELS, find_local_source

        tflite = find_local_source(KNOWN_MODELS[model]) if model == DEFAULT_MODEL else None  # its TFLite original
        peer_rows, checks = bench_peers(model, photo, resolutions, repeats, references, tflite,
                                        names=[n for n in CPU_PEERS if n in chosen])
        rows += peer_rows
    if "tensorrt" in chosen:
        rows += bench_tensorrt(model, photo, resolutions, batch_sizes or [1], repeats, references, bench_device)
    if "naive" in chosen and end_to_end:
        rows += [bench_naive_end_to_end(model, files, r, max(1, repeats // 2)) for r in resolutions]
    measured = None
    if peak:  # after the rows: the same clocks and temperature, and the rows' memory figures untouched by it
        from .peak import measure_peak

        measured = measure_peak(bench_device, **(peak_sizes or {}))
    annotate_rates(rows, measured, bench_device)
    result = BenchResult(machine=machine_description(bench_device), torch=torch.__version__,
                         photos=[f.name for f in files], gflop_per_image=gflop_per_image(resolutions),
                         checks=checks, rows=rows, compound=compound_rows, peak=measured).to_json()
    if print_table:
        print(format_table(result))
    if output is not None:
        save_json(result, output)
    return result
