"""The ``cartoonkit`` command line.

Errors a user can cause come out as one line on stderr and a non-zero exit code, never a
traceback (``--debug`` shows it). One bad file never stops the others.

Start-up: the arguments are parsed before anything heavy is imported (this module and what it
imports at the top need neither torch nor Pillow), so ``--help`` and a bad flag answer at once; each
command imports what it uses. Every picture, engine and run setting's flag comes from its declaration in
:class:`~cartoonkit.config.CartoonConfig`, :class:`~cartoonkit.options.EngineOptions`,
:class:`~cartoonkit.run_options.FolderOptions` or :class:`~cartoonkit.run_options.VideoOptions`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, settings
from .bench.variants import DEFAULT_VARIANTS, PEERS, VARIANTS
from .config import DEFAULT_MODEL, CartoonConfig
from .errors import CartoonkitError, ConfigError
from .formats import READ_FORMAT_NAMES
from .options import EngineOptions
from .run_options import BACKENDS, FolderOptions, VideoOptions

log = logging.getLogger("cartoonkit")

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


@dataclass
class RunReport:
    """What happened to each input of a ``run``, and to every entry of the folders it was given."""

    done: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    account: object = None  # folder.account.Account: every input and folder entry, counted once

    def summary(self, seconds: float, out_dir: Path) -> str:
        return (f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed "
                f"in {seconds:.1f} s -> {out_dir}")


def config_from_args(args: argparse.Namespace) -> CartoonConfig:
    return settings.from_arguments(CartoonConfig, args)


def engine_options_from_args(args: argparse.Namespace) -> EngineOptions:
    return settings.from_arguments(EngineOptions, args)


def folder_options_from_args(args: argparse.Namespace) -> FolderOptions:
    return settings.from_arguments(FolderOptions, args)


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .folder.account import FOLDER_KINDS, KEPT, Account
    from .folder.plan import collect_inputs, plan_outputs, split_done
    from .folder.reasons import failure_kind

    config = config_from_args(args)
    options = engine_options_from_args(args)
    run_options = folder_options_from_args(args)
    out_dir = Path(args.output)
    report = RunReport(account=Account())
    start = time.perf_counter()

    def fail(name: str, reason: str) -> None:
        report.failed.append((name, reason))
        report.account.add("failed", failure_kind(reason), name)

    def skip(name: str, kind: str, reason: str) -> None:
        report.skipped.append((name, reason))
        report.account.add("kept" if kind == KEPT else "skipped", kind, name, folder=kind in FOLDER_KINDS)

    tasks = plan_outputs(collect_inputs(args.inputs, fail, skip), out_dir, config.format, fail)
    todo, kept = split_done(tasks, "overwrite" if run_options.overwrite else "keep")
    for src, reason in kept:
        skip(src, KEPT, reason)
    for src, reason in report.failed:
        print(f"error: {src}: {reason}", file=sys.stderr)

    if todo:
        from .pipeline import Cartoonizer

        cartoonizer = Cartoonizer.from_pretrained(args.model, engine_options=options, head_model=args.head_model,
                                                  limits=run_options.limits)
        bar = tqdm(todo, desc="cartoonizing", unit="img", disable=len(todo) < 2 or args.quiet, file=sys.stderr)
        for task in bar:
            try:
                cartoonizer.cartoonize_file(task.src, task.dst, config)
                report.done.append(task.dst)
                report.account.add("done", "done", task.name)
            except CartoonkitError as exc:
                report.failed.append((task.name, str(exc)))
                report.account.add("failed", failure_kind(str(exc)), task.name)
                tqdm.write(f"error: {exc}", file=sys.stderr)
            except Exception as exc:  # a bug must not cost the user the rest of the folder
                report.failed.append((task.name, f"unexpected {type(exc).__name__}: {exc}"))
                report.account.add("failed", "unexpected error", task.name)
                tqdm.write(f"error: {task.name}: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
                if args.debug:
                    traceback.print_exc()
    if not args.quiet:
        for src, reason in report.skipped:
            print(f"skipped: {src}: {reason}", file=sys.stderr)
    print(report.summary(time.perf_counter() - start, out_dir))
    for line in report.account.lines("the inputs given"):
        print(line)
    return EXIT_FAILURES if report.failed else EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .folder import run_folder

    if args.deprecated_engine is not None:
        print(f"warning: --engine {args.deprecated_engine} is deprecated and goes in the next release; use "
              f"--backend {args.deprecated_engine} (--engine now means the network runner only)", file=sys.stderr)
        if args.backend != FolderOptions.backend and args.backend != args.deprecated_engine:
            raise ConfigError(f"--engine {args.deprecated_engine} and --backend {args.backend} disagree; "
                              "give --backend only")
        args.backend = args.deprecated_engine
    report = run_folder(args.input, args.output, config_from_args(args), engine_options_from_args(args),
                        folder_options_from_args(args), model=args.model, head_model=args.head_model,
                        progress=not args.quiet, echo=lambda line: tqdm.write(line, file=sys.stderr))
    if not args.quiet:
        shown = 20
        for src, reason in report.skipped[:shown]:
            print(f"skipped: {src}: {reason}", file=sys.stderr)
        if len(report.skipped) > shown:
            print(f"skipped: ... and {len(report.skipped) - shown} more (see the report)", file=sys.stderr)
    if report.stopped:
        print(f"error: {report.stopped}; stopped with {report.not_processed} file(s) not processed: "
              "fix that and rerun with --resume", file=sys.stderr)
    print(report.summary())
    for line in report.account_lines():
        print(line)
    if report.report_path is not None:
        print(f"report: {report.report_path}")
    if report.interrupted:
        print("interrupted", file=sys.stderr)
        return 130
    if report.stopped:
        return EXIT_USAGE
    return EXIT_FAILURES if report.failed else EXIT_OK


def cmd_video(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .video import cartoonize_video, require_av

    require_av()  # before the model loads: a missing extra is the first thing to hear about
    video_options = settings.from_arguments(VideoOptions, args)  # a bad section is refused before the model loads
    dst = Path(args.output)
    if dst.exists() and not args.overwrite:
        raise ConfigError(f"{dst} exists; pass --overwrite to replace it")
    bar = tqdm(desc="cartoonizing", unit="frame", disable=args.quiet, file=sys.stderr)

    def progress(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        # The clip loads the model itself, after reading its header: on a CPU a long clip makes `auto` int8
        # (cartoonkit.video.clip_precision).
        summary = cartoonize_video(args.input, dst, config_from_args(args), engine_options_from_args(args),
                                   video_options, model=args.model, head_model=args.head_model,
                                   progress=progress)
    finally:
        bar.close()
    print(summary.describe())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .samples import sample_photos

    photos = sample_photos()
    args.inputs = [str(p) for p in photos]
    print(f"cartoonizing {len(photos)} sample portrait(s): {', '.join(p.name for p in photos)}")
    code = cmd_run(args)
    print(f"results are in {Path(args.output).resolve()}")
    return code


def cmd_models(args: argparse.Namespace) -> int:
    from . import weights

    if args.models_command == "list":
        cards = {c.name: c for c in weights.installed_models()}
        rows = [(c.name, "installed", c.style, c.licence, c.source) for c in cards.values()]
        rows += [(s.name, "installed" if weights.is_installed(s.name) else "not installed (installs on first use)",
                  s.style, s.licence, s.url)
                 for s in weights.KNOWN_MODELS.values() if s.name not in cards]
        from . import paths
        print(f"models folder: {paths.models_dir()}")
        for name, state, style, licence, source in rows:
            print(f"{name:<14} {state:<12} style={style:<10} licence: {licence}\n{'':<14} source: {source}")
        return EXIT_OK
    if args.models_command == "install" and args.name == "yunet":
        print(f"face detector ready: {weights.detector_path('yunet')} (YuNet, MIT licence)")
        return EXIT_OK
    if args.models_command == "install":
        card = weights.install(args.name, force=args.force)
        print(f"installed {card.name} (licence: {card.licence})")
        return EXIT_OK
    if args.models_command == "import":
        if Path(args.path).is_dir():  # a ModelScope DCT-Net directory: head/background pair
            for card in weights.import_dctnet_dir(args.path, args.name, style=args.style, licence=args.licence):
                print(f"imported {card.source} as {card.name} (role {card.role}, "
                      f"sha256 of weights {card.weights_sha256[:12]}…)")
            return EXIT_OK
        card = weights.import_model(args.path, name=args.name, style=args.style, licence=args.licence)
        print(f"imported {args.path} as {card.name} (sha256 of weights {card.weights_sha256[:12]}…)")
        return EXIT_OK
    if args.models_command == "remove":
        weights.remove(args.name)
        print(f"removed {args.name}")
        return EXIT_OK
    raise AssertionError(args.models_command)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.run import run_benchmarks

    run_benchmarks(resolutions=args.resolutions, repeats=args.repeats, device=args.device,
                   model=args.model, output=Path(args.json) if args.json else None, images=args.images,
                   variants=args.variants, batch_sizes=args.batch_sizes, end_to_end=not args.model_only,
                   peers=False if args.peers is None else args.peers, end_to_end_count=args.count,
                   compound=_compound_photos() if args.compound else None, peak=not args.no_peak)
    return EXIT_OK


def _compound_photos() -> dict[str, Path]:
    """Sample photos with one and four faces, from ../shared/images."""
    from .paths import shared_images_dir

    folder = shared_images_dir()
    if folder is None:
        raise ConfigError("--compound needs ../shared/images (wb_actress2.jpg, wb_party7.jpg) beside the checkout")
    return {"1": folder / "wb_actress2.jpg", "4": folder / "wb_party7.jpg"}


def cmd_export(args: argparse.Namespace) -> int:
    """The float32 network as ONNX or OpenVINO IR, with the parity check against PyTorch printed."""
    import os
    import shutil
    import tempfile

    from . import export
    from .weights import load_network

    openvino = args.format == "openvino"
    if openvino:
        export.require("openvino", "cartoonkit export --format openvino", export.OPENVINO_EXTRA)
    network, card = load_network(args.model)
    size, path = args.check_size, Path(args.output)
    if openvino and path.suffix != ".xml":
        raise ConfigError(f"--format openvino writes NAME.xml and NAME.bin: give -o DIR/NAME.xml, not {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed once checked: never a half-written or unchecked model at OUTPUT.
    workdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    temporary = workdir / path.name  # OpenVINO's .xml finds its .bin by name, so keep the final names
    written = [path.with_suffix(".bin"), path] if openvino else [path]  # the .xml last: it names the .bin
    shape = {} if args.dynamic else {"height": size, "width": size}
    try:
        if openvino:
            export.export_openvino(network, temporary, dynamic=args.dynamic, **shape)
        else:
            export.export_onnx(network, temporary, dynamic=args.dynamic, **shape)
        checks = _export_checks(size, args.dynamic)
        worst = (export.verify_openvino if openvino else export.verify_onnx)(temporary, network, checks)
        if worst * 127.5 < 0.5:
            for final in written:
                os.replace(workdir / final.name, final)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    shapes = ", ".join("x".join(map(str, batch.shape)) for batch in checks)
    axes = "batch, height and width free (multiples of 4)" if args.dynamic else f"fixed 1x3x{size}x{size}"
    runtime = "OpenVINO (CPU, f32 inference)" if openvino else "ONNX Runtime"
    print(f"parity with PyTorch float32 on a real photo ({shapes}, {runtime}): max abs difference {worst:.2e} "
          f"on the [-1, 1] scale, {worst * 127.5:.4f} of a level")
    if worst * 127.5 >= 0.5:
        print(f"error: the export does not match PyTorch within half a level; {path} was not written",
              file=sys.stderr)
        return EXIT_FAILURES
    megabytes = sum(f.stat().st_size for f in written) / 2**20
    kind = f"OpenVINO IR with {path.with_suffix('.bin').name}" if openvino else "ONNX"
    print(f"exported {card.name} to {path} ({megabytes:.1f} MB, {kind}, float32, {axes})")
    return EXIT_OK


def _export_checks(size: int, dynamic: bool) -> list:
    """Network inputs from the first sample portrait: the check size, and for a dynamic export also another
    shape and a batch of two, which a graph that baked in its trace size would get wrong."""
    from .bench.images import square_photo
    from .imageio import read_image
    from .samples import sample_photos
    from .transforms import resize_to, rgb_uint8_to_network

    photo = read_image(sample_photos()[0]).rgb
    square = square_photo(photo, size)[None]
    checks = [rgb_uint8_to_network(square)]
    if dynamic:
        wide = resize_to(square, (size // 2, size + size // 4))
        checks += [rgb_uint8_to_network(wide), rgb_uint8_to_network(square.expand(2, -1, -1, -1))]
    return checks


def cmd_warmup(args: argparse.Namespace) -> int:
    from .compile_cache import CompiledCache, mark_int8_ready
    from .pipeline import Cartoonizer
    from .warmup import common_shapes, warm_up

    ck = Cartoonizer.from_pretrained(args.model, device="cpu", precision="int8")
    total = sum(len(common_shapes(r, ck.engine.bucket)) for r in args.resolution)
    print(f"int8 {args.model}: {total} shape(s) at {', '.join(map(str, args.resolution))} px "
          "(a new one compiles in 10-30 s, a cached one loads at once)")

    def report(warmed) -> None:
        height, width = warmed.shape
        state = "compiled" if warmed.built else "cached"
        print(f"  {height}x{width}: {state} ({warmed.seconds:.1f} s)", flush=True)

    warmed = warm_up(ck, args.resolution, report)
    mark_int8_ready([w.shape for w in warmed])
    cache = CompiledCache()
    print(f"{sum(w.built for w in warmed)} compiled, {sum(not w.built for w in warmed)} already cached; "
          f"cache {cache.folder} holds {len(cache.entries())} package(s), {cache.size_bytes() / 2**20:.0f} MB "
          f"(limit {cache.limit_bytes // 2**20} MB; safe to delete)")
    print("--precision auto now picks int8 on this CPU (cartoonkit doctor says so)")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import describe

    print(describe(args.resolution))
    return EXIT_OK


def _add_settings(p: argparse.ArgumentParser) -> None:
    """The flags every photo command takes: one per declared setting, plus where things go."""
    p.add_argument("-o", "--output", default="out", help="output folder (created if missing; default: out)")
    settings.add_arguments(p, CartoonConfig)
    settings.add_arguments(p, EngineOptions)
    _add_model(p)
    settings.add_arguments(p, FolderOptions, only=("overwrite", "max_pixels"))


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"installed model name (default {DEFAULT_MODEL})")
    p.add_argument("--head-model", default=None,
                   help="compound mode: installed model for the faces (default: --model)")


def _multiple_of_4(text: str) -> int:
    value = int(text)
    if value <= 0 or value % 4:
        raise argparse.ArgumentTypeError(f"{value}: must be a positive multiple of 4")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cartoonkit", description="Turn photos of people into cartoons, fast.")
    parser.add_argument("--version", action="version", version=f"cartoonkit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors and the summary")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="cartoonize image files or folders",
                         description="Cartoonize files or the images directly inside folders; one output per "
                                     "input, OUT/<stem>.<format>.")
    run.add_argument("inputs", nargs="+", metavar="INPUT",
                     help=f"image files or folders; formats read: {READ_FORMAT_NAMES}")
    _add_settings(run)
    run.set_defaults(func=cmd_run)

    batch = sub.add_parser(
        "batch", help="cartoonize a folder tree, pipelined and resumable",
        description="Cartoonize every image under IN_DIR (recursively) into OUT/<relative path>.<format>. "
                    "Reading, decoding, the network, encoding and writing overlap; a JSON report records "
                    "every file. Outputs are written atomically, so after an interruption (even kill -9) "
                    "the same command with --resume finishes the rest.",
        epilog="exit codes: 0 everything done or skipped; 1 some files failed (see the report); 2 the batch "
               "could not start or had to stop (bad setting, other settings in OUT, output folder full or not "
               "writable); 130 interrupted.")
    batch.add_argument("input", metavar="IN_DIR",
                       help="folder of images, searched recursively, or an object storage prefix that pyarrow.fs "
                            "opens (s3://bucket/photos, gs://...; -o may be one too, see docs/scaling.md); formats "
                            f"read: {READ_FORMAT_NAMES}; every other entry is reported as skipped, with the reason")
    _add_settings(batch)
    settings.add_arguments(batch, FolderOptions, skip=("overwrite", "max_pixels"))
    batch.add_argument("--engine", choices=BACKENDS,
                       default=None, dest="deprecated_engine",
                       help="deprecated spelling of --backend (goes in the next release)")
    batch.set_defaults(func=cmd_batch)

    video = sub.add_parser(
        "video", help="cartoonize a video clip, with its sound, flicker reduced",
        description="Cartoonize every frame of a clip through the photo chain into an H.264 MP4 (by default), "
                    "keeping the time stamps, the rotation and the audio (copied, or re-encoded to AAC where the "
                    "container cannot hold it). Temporal smoothing along the optical flow of the input reduces "
                    "flicker. The output appears only when complete. Needs: pip install 'cartoonkit[video]'.")
    video.add_argument("input", metavar="IN", help="video file (any container and codec FFmpeg decodes)")
    video.add_argument("-o", "--output", required=True, metavar="OUT",
                       help="output file: .mp4 (default choice), .m4v, .mov or .mkv")
    settings.add_arguments(video, CartoonConfig, skip=("format", "quality"))
    settings.add_arguments(video, EngineOptions)
    _add_model(video)
    settings.add_arguments(video, VideoOptions)
    video.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    video.set_defaults(func=cmd_video)

    demo = sub.add_parser("demo", help="cartoonize the bundled sample portraits into a folder")
    _add_settings(demo)
    demo.set_defaults(func=cmd_demo)

    models = sub.add_parser("models", help="list, install, import or remove models")
    msub = models.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="installed and known models, with licence")
    install = msub.add_parser("install", help="fetch and convert a known model (or `yunet`, the face detector "
                                              "compound mode uses)")
    install.add_argument("name")
    install.add_argument("--force", action="store_true", help="convert again even if installed")
    imp = msub.add_parser("import", help="convert a .tflite or frozen .pb of this network, or a DCT-Net model "
                                         "folder (head + background .pb), into named model(s)")
    imp.add_argument("path")
    imp.add_argument("--name", required=True)
    imp.add_argument("--style", default="custom")
    imp.add_argument("--licence", default="unknown", help="licence of the weights, shown by `models list`")
    remove = msub.add_parser("remove", help="delete an installed model")
    remove.add_argument("name")
    models.set_defaults(func=cmd_models)

    bench = sub.add_parser("bench", help="measure ms per image, model alone and end to end")
    bench.add_argument("--resolutions", type=int, nargs="+", default=[512, 1024])
    bench.add_argument("--repeats", type=int, default=5, help="timed repeats per row (median reported)")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--model", default=DEFAULT_MODEL)
    bench.add_argument("--images", default=None, help="folder of JPEG photos for the end-to-end rows "
                                                      "(default: the sample portraits)")
    bench.add_argument("--json", default=None, help="also write the results as JSON here")
    bench.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS),
                       help=f"engine configurations to compare (default: {' '.join(DEFAULT_VARIANTS)})")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[1], help="model rows per batch size")
    bench.add_argument("--model-only", action="store_true", help="skip the end-to-end rows")
    bench.add_argument("--peers", nargs="*", default=None, choices=list(PEERS), metavar="PEER",
                       help="add the peers, all of them or those named: onnxruntime (fp32 and int8), openvino (fp32, "
                            "bf16, int8 through NNCF), tflite (224 only), naive (PIL + float32 eager, end to end), "
                            "tensorrt (float16, CUDA only); each needs its extra (bench, openvino, tensorrt)")
    bench.add_argument("--no-peak", action="store_true",
                       help="skip measuring the device's matmul peak and copy bandwidth (by default measured after "
                            "the rows, about a second, for each model row's share of the peak)")
    bench.add_argument("--compound", action="store_true",
                       help="add compound-mode rows: a 1-face and a 4-face photo, with the share of each stage")
    bench.add_argument("--count", type=int, default=None,
                       help="photos per end-to-end pass, cycling through the available ones (e.g. 20)")
    bench.set_defaults(func=cmd_bench)

    export = sub.add_parser(
        "export", help="write the network for another runtime (ONNX), with a parity check",
        description="Export the float32 network (generator and guided-filter head) for deployment elsewhere; the "
                    "input is photo_bgr (N, 3, H, W) float32 BGR in [-1, 1], H and W multiples of 4, the output "
                    "cartoon_bgr of the same shape. The export is checked against PyTorch on a real photo.")
    export.add_argument("--format", default="onnx", choices=["onnx", "openvino"],
                        help="onnx (default) or openvino (IR: -o DIR/NAME.xml writes NAME.xml and NAME.bin)")
    export.add_argument("-o", "--output", default="cartoonkit.onnx", help="file to write (default cartoonkit.onnx)")
    export.add_argument("--model", default=DEFAULT_MODEL, help=f"installed model name (default {DEFAULT_MODEL})")
    export.add_argument("--dynamic", action="store_true",
                        help="free batch, height and width (multiples of 4) instead of one fixed shape")
    export.add_argument("--check-size", type=_multiple_of_4, default=256,
                        help="side of the square the parity check runs at, and of a fixed-shape export (default 256)")
    export.set_defaults(func=cmd_export)

    warmup = sub.add_parser(
        "warmup", help="compile the int8 network ahead of time for the common photo shapes (x86 CPUs)",
        description="Compile --precision int8 for the shapes photos of the usual aspect ratios (1:1, 4:3, 3:2, 16:9, "
                    "both orientations) run at, into the persistent cache, so that later runs start at once.")
    warmup.add_argument("--resolution", type=int, nargs="+", default=[1024],
                        help="output long side(s) to prepare (default 1024)")
    warmup.add_argument("--model", default=DEFAULT_MODEL, help=f"installed model name (default {DEFAULT_MODEL})")
    warmup.set_defaults(func=cmd_warmup)

    doctor = sub.add_parser("doctor", help="what hardware is here and how cartoonkit will use it")
    doctor.add_argument("--resolution", type=int, default=1024, help="resolution to size the batch for")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s",
                        stream=sys.stderr)
    try:
        return args.func(args)
    except CartoonkitError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
