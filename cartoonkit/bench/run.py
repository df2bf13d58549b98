"""The measurements: ms per image for the network alone and end to end (JPEG file in, PNG file out).

Every row of one run is measured in the same process on the same photos, so rows compare with
each other; absolute times only mean something on a named, otherwise idle machine. Each engine
switch is its own variant (:data:`~cartoonkit.bench.variants.VARIANTS`), so the table shows what
each optimisation buys. Results follow :mod:`cartoonkit.bench.results`.
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
from .results import BenchResult, BenchRow, CompoundRow, format_table, save_json
from .variants import DEFAULT_VARIANTS, VARIANTS


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


def bench_peers(model: str, photo: torch.Tensor, resolutions: list[int], repeats: int,
                references: dict[int, torch.Tensor], tflite_file: Path | None,
                echo=None) -> tuple[list[BenchRow], dict]:
    """Model-alone rows of the other runtimes, each with its PSNR against eager float32.

    On our ONNX export (parity-checked against PyTorch at every resolution): ONNX Runtime float32 and int8
    (:class:`~cartoonkit.bench.peers.OnnxRuntimeInt8Runner`, with cartoonkit's float layers and with every
    convolution in int8), OpenVINO float32, bfloat16 and int8 (:class:`~cartoonkit.bench.peers.OpenVinoRunner`);
    then the TFLite interpreter (224 only). A peer whose package is missing is skipped with one line through
    ``echo`` (default: stderr) naming the extra that installs it; the run goes on.
    """
    from ..errors import MissingDependencyError
    from ..export import export_onnx, verify_onnx
    from ..transforms import rgb_uint8_to_network
    from ..weights import load_network
    from .peers import OnnxRuntimeInt8Runner, OnnxRuntimeRunner, OpenVinoRunner, TFLiteRunner

    if echo is None:
        import sys

        def echo(line: str) -> None:
            print(line, file=sys.stderr)

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
        try:
            onnx_path = export_onnx(network, Path(tmp) / "cartoon.onnx", dynamic=True)
        except MissingDependencyError as exc:
            echo(f"skipping the ONNX-based peers (ONNX Runtime, OpenVINO): {exc}")
            onnx_path = None
        if onnx_path is not None:
            try:
                for resolution, x in inputs.items():
                    checks[f"onnx_max_abs_diff_{resolution}"] = verify_onnx(onnx_path, network, torch.from_numpy(x))
            except MissingDependencyError as exc:
                echo(f"skipping the ONNX Runtime parity check: {exc}")
            measure("ONNX Runtime", lambda: OnnxRuntimeRunner(onnx_path), "float32")
            measure("ONNX Runtime int8", lambda: OnnxRuntimeInt8Runner(onnx_path), "int8 (conv0, conv8 float32)")
            measure("ONNX Runtime int8 (all convolutions)", lambda: OnnxRuntimeInt8Runner(onnx_path, float_layers=()),
                    "int8")
            for precision in ("fp32", "bf16", "int8"):
                measure(f"OpenVINO {precision}", lambda p=precision: OpenVinoRunner(onnx_path, p),
                        _openvino_precision)
    if tflite_file is not None:
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
                   batch_sizes: list[int] | None = None, end_to_end: bool = True, peers: bool = False,
                   end_to_end_count: int | None = None, compound: dict[str, Path] | None = None,
                   print_table: bool = True) -> dict:
    """Every row asked for, printed as a table and written to ``output`` as JSON; returns that JSON object
    (:meth:`BenchResult.to_json <cartoonkit.bench.results.BenchResult.to_json>`)."""
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
    if peers:
        from ..weights.registry import KNOWN_MODELS, find_local_source

        tflite = find_local_source(KNOWN_MODELS[model]) if model == DEFAULT_MODEL else None  # its TFLite original
        peer_rows, checks = bench_peers(model, photo, resolutions, repeats, references, tflite)
        rows += peer_rows
        if end_to_end:
            rows += [bench_naive_end_to_end(model, files, r, max(1, repeats // 2)) for r in resolutions]
    result = BenchResult(machine=machine_description(resolve_device(device)), torch=torch.__version__,
                         photos=[f.name for f in files], gflop_per_image=gflop_per_image(resolutions),
                         checks=checks, rows=rows, compound=compound_rows).to_json()
    if print_table:
        print(format_table(result))
    if output is not None:
        save_json(result, output)
    return result
