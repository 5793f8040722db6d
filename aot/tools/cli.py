"""The `aotc` command line: export, verify and inspect models as standalone C.

    aotc export examples/digits_mlp.py:model --input x:float32[1,64] \\
        --checkpoint runs/mlp --name mlp -o build/mlp
    aotc verify build/mlp
    aotc inspect examples/digits_mlp.py:model --input x:float32[1,64] \\
        --checkpoint runs/mlp --html mlp.html
    aotc export model.onnx --input x:float32[1,3,32,32] -o build/onnx_model
    aotc export --hf path/to/gpt2 --decode --max-seq 128 --name lm -o build/lm
    aotc onnx-report model.onnx       # its operators and where each is supported

Exit status: 0 on success, 1 when `verify` finds a difference above the
tolerance or a build fails, 2 for a usage error (a bad --input or --label, a
missing module or function, a module that does not parse or raises at import,
a model raising while traced, a checkpoint that does not match the model, an
unknown --target), with a one-line message.
"""
from __future__ import annotations

import argparse
import sys

EXAMPLES = {
    "export": """examples:
  aotc export examples/digits_mlp.py:model --input x:float32[1,64] --checkpoint runs/mlp \\
      --name mlp -o build/mlp
  aotc export mypkg.graphs:attention --input q:float32[8,64] --input k:float32[8,64] \\
      --weights blob -o build/attn
  aotc export examples/digits_mlp.py:model --input x:float32[32,64] --checkpoint runs/mlp \\
      --train --label y:int32[32] --optimizer adam:0.001 -o build/mlp_train
  aotc export examples/digits_mlp.py:model --input x:float32[1,64] --checkpoint runs/mlp \\
      --target aarch64-linux-gnu -o build/mlp_arm
  aotc export --hf path/to/gpt2 --decode --max-seq 256 --prefill-len 128 --name lm -o build/lm
  aotc export --hf path/to/gpt2 --decode --max-seq 256 --weight-storage bfloat16 -o build/lm16

writes OUTDIR/NAME.h (the documented C interface), NAME.c (kernels), NAME_weights.c
(+ .S/.bin), libNAME.so, libNAME.a, a Makefile, runtime/ headers and manifest.json;
with --hf DIR --decode, NAME_prefill.c and NAME_decode.c in place of NAME.c.""",
    "verify": """examples:
  aotc verify build/mlp                     # random inputs, tolerance 1e-5
  aotc verify build/mlp --tolerance 1e-4 --trials 5
  aotc verify build/lm                      # --hf --decode: prefill and decode-step logits
                                            # against the HuggingFace model on xla

exit status 1 when any output differs from the XLA backend by more than the
tolerance (relative to max(1, |reference|)).""",
    "inspect": """examples:
  aotc inspect examples/digits_mlp.py:model --input x:float32[1,64] --checkpoint runs/mlp
  aotc inspect examples/digits_cnn.py:model --input x:float32[1,1,8,8] \\
      --checkpoint runs/cnn --html cnn.html --no-text
  aotc inspect --hf path/to/gpt2 --decode --max-seq 128 --weight-storage bfloat16""",
    "onnx-report": """examples:
  aotc onnx-report resnet.onnx
  aotc onnx-report bert.onnx --input input_ids:int64[1,128] --input attention_mask:int64[1,128]

exit status 1 when an operator is not supported.""",
}


def _quantize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quantize", choices=("int8-weights", "int8"),
                   help="int8-weights: the checkpoint's dense-layer and convolution weights "
                        "quantized to int8 (symmetric, a scale per output column or channel; "
                        "embedding tables a scale per row; a quarter of the bytes, "
                        "arithmetic in float32); int8: the same weights times int8 "
                        "activations (scales measured on --calibration), int32 sums, VNNI "
                        "dot products where the target has them")
    p.add_argument("--calibration", metavar="FILE.npz",
                   help="with --quantize int8: one array per model input, named after it, "
                        "batch first")


def _model_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    p.add_argument("function", metavar="MODULE:FUNCTION", nargs="?" if optional else None,
                   help="the model: a dotted module or a .py path, then ':' and the function; "
                        "a plain graph function f(x, ...) or a model(ctx, inputs); or an "
                        "ONNX file MODEL.onnx (--input NAME:DTYPE[DIMS] then fixes its "
                        "dynamic dimensions)")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME:DTYPE[DIMS]",
                   help="one model input, in call order (repeat for several), e.g. "
                        "x:float32[1,64]; NAME becomes the C parameter name; a dim may be "
                        "a symbol, x:float32[N,64], sized at run time up to its --max")
    p.add_argument("--max", action="append", default=[], metavar="SYMBOL=MAXIMUM",
                   help="the largest value of a symbolic dim of --input (repeat per "
                        "symbol), e.g. N=256: one library serves sizes 1..256, its "
                        "functions take `int64_t N` first")
    p.add_argument("--checkpoint", metavar="DIR",
                   help="checkpoint directory (its latest checkpoint) or checkpoint .json "
                        "holding a model(ctx, inputs)'s variables; they become constants")
    p.add_argument("--weight-storage", choices=("float32", "bfloat16", "float16"),
                   default="float32",
                   help="float32 (default); bfloat16: the checkpoint's dense-layer weights "
                        "(with --hf DIR --decode: the decoder's weight matrices, a tied "
                        "output projection included) "
                        "rounded to bfloat16 and stored at half the bytes, arithmetic in "
                        "float32 (about 2x faster batch-1 inference, which is bound by "
                        "reading the weights; outputs move by the rounding, ~1e-3 relative); "
                        "float16: its convolution weights rounded to float16, likewise")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="aotc", description=__doc__,
        epilog="run `aotc COMMAND --help` for each command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action=_Version, help="print the version and exit")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    ex = sub.add_parser("export", help="export a model function as a standalone C library",
                        description="Export a model function as a standalone C library: no "
                                    "Python, no malloc at run time, only libc and libm.",
                        epilog=EXAMPLES["export"], formatter_class=fmt)
    _model_args(ex, optional=True)
    ex.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                    help="folder to write the artifact into (created)")
    ex.add_argument("--name", default="model",
                    help="C prefix of every symbol and file: NAME.h, NAME_run (default: model); "
                    "a C identifier, not a system header's name (math, omp, ...)")
    ex.add_argument("--weights", choices=("auto", "embed", "blob", "file"), default="auto",
                    help="auto (default): embed up to 8 MB of weights, else blob; "
                         "embed: static const arrays in NAME_weights.c; "
                         "blob: NAME_weights.bin linked through an assembler .incbin (large "
                         "models compile in seconds); file: loaded at run time by "
                         "NAME_load_weights(path), checked against a CRC-32 in NAME.h")
    ex.add_argument("--target", default="host", metavar="TRIPLE",
                    help="host (default), or a cross target built with zig cc or "
                         "TRIPLE-gcc: aarch64-linux-gnu, wasm32-wasi, ...")
    ex.add_argument("--portable", action="store_true",
                    help="host builds: no -march=native (runs on any CPU of the architecture)")
    ex.add_argument("--openmp", action="store_true",
                    help="compile kernels with OpenMP threads (the library then needs libgomp); "
                         "default single-threaded")
    ex.add_argument("--train", action="store_true",
                    help="also export NAME_train_step: forward, loss, gradients and optimizer "
                         "update, updating a caller-owned state buffer (needs --checkpoint and "
                         "--label)")
    ex.add_argument("--label", action="append", default=[], metavar="NAME:DTYPE[DIMS]",
                    help="with --train: the training targets, e.g. y:int32[32]")
    ex.add_argument("--loss", default="sparse_categorical_cross_entropy_logits",
                    help="with --train: a function of mlframework.ml.losses (default: "
                         "%(default)s)")
    ex.add_argument("--optimizer", default="adam:0.001", metavar="NAME[:LR]",
                    help="with --train: optimizer and learning rate (default: %(default)s)")
    ex.add_argument("--hf", metavar="DIR",
                    help="with --decode, instead of MODULE:FUNCTION: a HuggingFace causal "
                         "language model folder (config.json, model.safetensors; GPT-2, "
                         "LLaMA, Mistral, Qwen2)")
    ex.add_argument("--decode", action="store_true",
                    help="with --hf: export NAME_prefill and NAME_decode_step, which generate "
                         "token by token over a key/value cache the caller owns "
                         "(NAME_KV_CACHE_BYTES)")
    ex.add_argument("--max-seq", type=int, metavar="N",
                    help="with --decode (required): the most positions a sequence holds, "
                         "prompt included; sizes the cache")
    ex.add_argument("--prefill-len", type=int, metavar="N",
                    help="with --decode: prompt tokens NAME_prefill runs in one pass "
                         "(default --max-seq; the pass computes N positions whatever the "
                         "prompt's length, longer prompts continue one token at a time)")
    _quantize_args(ex)
    ex.add_argument("--no-build", action="store_true",
                    help="write the sources and Makefile only; do not compile")

    ve = sub.add_parser("verify", help="compare an exported library with the XLA backend",
                        description="Run an exported library (through cffi) and the XLA "
                                    "backend on the same random inputs; report the largest "
                                    "difference per output.",
                        epilog=EXAMPLES["verify"], formatter_class=fmt)
    ve.add_argument("folder", metavar="OUTDIR", help="a folder written by `aotc export`")
    ve.add_argument("--tolerance", type=float, default=1e-5,
                    help="largest accepted |c - xla| / max(1, |xla|) (default: %(default)g)")
    ve.add_argument("--trials", type=int, default=2, help="random input sets (default: 2)")
    ve.add_argument("--seed", type=int, default=0, help="seed of the random inputs")

    ins = sub.add_parser("inspect", help="show how the compiler turns a model into C",
                         description="Print the traced graph, the graph after each pass, the "
                                     "fusion groups with the source line of every fused node, "
                                     "the memory plan and the C of each kernel with its FLOP "
                                     "and byte counts.",
                         epilog=EXAMPLES["inspect"], formatter_class=fmt)
    _model_args(ins, optional=True)
    _quantize_args(ins)
    ins.add_argument("--hf", metavar="DIR",
                     help="with --decode, instead of MODULE:FUNCTION: a HuggingFace causal "
                          "language model folder, shown as `aotc export --hf DIR --decode` "
                          "compiles it")
    ins.add_argument("--decode", action="store_true", help="with --hf: a decoder export")
    ins.add_argument("--max-seq", type=int, metavar="N", help="with --decode (required)")
    ins.add_argument("--prefill-len", type=int, metavar="N", help="with --decode")
    ins.add_argument("--step", choices=("decode", "prefill"), default="decode",
                     help="with --decode: the program shown, the one-token step (default) or "
                          "the prompt's one pass")
    ins.add_argument("--html", metavar="FILE",
                     help="also write one self-contained HTML page: the graph drawn after "
                          "each pass (click a node for its source line and kernel), the "
                          "roofline, the memory plan and the C")
    ins.add_argument("--no-text", action="store_true", help="do not print the text report")
    ins.add_argument("--peak-gflops", type=float, metavar="GFLOPS",
                     help="the roofline's peak compute in GFLOP/s (default: measured once on "
                          "one core by a small probe and cached as roofline_peaks.json in "
                          "$MLF_CACHE_DIR or ~/.cache/mlframework/c; delete it to measure "
                          "again)")
    ins.add_argument("--peak-gbs", type=float, metavar="GBS",
                     help="the roofline's peak memory bandwidth in GB/s (default: measured "
                          "with the compute peak)")
    rep = sub.add_parser("onnx-report", help="list an ONNX model's operators and their support",
                         description="Every operator of an ONNX model with its count, and "
                                     "whether the importer converts it, each backend runs it "
                                     "and `aotc export` compiles it.",
                         epilog=EXAMPLES["onnx-report"], formatter_class=fmt)
    rep.add_argument("model", metavar="MODEL.onnx", help="the ONNX file")
    rep.add_argument("--input", "-i", action="append", default=[], metavar="NAME:DTYPE[DIMS]",
                     help="fixes an input's dynamic dimensions, so the model is traced and the "
                          "backend columns name the primitives it really uses")
    return top


class _Version(argparse.Action):
    """--version, which imports mlframework (for its __version__) only when given: the
    rest of the command line, `aotc --help` included, runs without it."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                         nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        import mlframework
        print(f"aotc {mlframework.__version__}")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from aot.export.signature import UsageError
    try:
        return _COMMANDS[args.command](args)
    except UsageError as e:
        print(f"aotc {args.command}: error: {e}", file=sys.stderr)
        return 2


def _export(args) -> int:
    from aot.export.model import BuildError, TrainSpec, export_model
    from aot.export.signature import UsageError
    if args.hf or args.decode:
        return _export_decoder(args)
    if args.function is None:
        raise UsageError("export requires MODULE:FUNCTION, an ONNX file, or --hf DIR --decode")
    for flag in ("max_seq", "prefill_len"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag.replace('_', '-')} is only used with --hf DIR --decode")
    train = None
    if args.train:
        train = TrainSpec(labels=args.label, loss=args.loss, optimizer=args.optimizer)
    elif args.label:
        raise UsageError("--label is only used with --train")
    try:
        art = export_model(args.function, args.input, args.output, name=args.name,
                           checkpoint=args.checkpoint, weights=args.weights, target=args.target,
                           train=train, openmp=args.openmp, native=not args.portable,
                           build=not args.no_build, weight_storage=args.weight_storage,
                           quantize=args.quantize, calibration=args.calibration,
                           maxima=_maxima(args.max))
    except BuildError as e:
        print(f"aotc export: {e}", file=sys.stderr)
        return 1
    except NotImplementedError as e:
        print(f"aotc export: not implemented: {e}", file=sys.stderr)
        return 2
    m = art.manifest
    print(f"exported {m['function']} -> {art.out_dir}/ ({m['target']}, weights {m['weights']})")
    print(f"  {len(m['kernels'])} kernels, {m['total_flops']:,} FLOPs per run, arena "
          f"{m['arena_bytes']:,} bytes, weights {m['weights_bytes']:,} bytes")
    if m["symbols"]:
        print("  sizes chosen at run time (FLOPs and arena at the maxima): " +
              ", ".join(f"{k} in [1, {v}]" for k, v in m["symbols"].items()))
    for f in art.files:
        print(f"  {art.out_dir / f}")
    return 0


def _maxima(texts: list[str]) -> dict[str, int]:
    from aot.export.signature import UsageError, parse_max
    out: dict[str, int] = {}
    for text in texts:
        name, top = parse_max(text)
        if name in out:
            raise UsageError(f"--max {name} given twice ({out[name]} and {top})")
        out[name] = top
    return out


def _export_decoder(args) -> int:
    from aot.export.decoder import export_decoder
    from aot.export.model import BuildError
    from aot.export.signature import UsageError
    if not (args.hf and args.decode):
        raise UsageError("--hf and --decode go together: aotc export --hf DIR --decode "
                         "--max-seq N -o OUTDIR")
    if args.function is not None:
        raise UsageError(f"--hf {args.hf} is the model; drop {args.function!r}")
    given = [f for f, v in (("--input", args.input), ("--checkpoint", args.checkpoint),
                            ("--train", args.train), ("--label", args.label),
                            ("--quantize", args.quantize), ("--calibration", args.calibration))
             if v]
    if given:
        raise UsageError(f"--hf DIR --decode takes no {', '.join(given)}")
    if args.max_seq is None:
        raise UsageError("--decode requires --max-seq N (the positions the cache holds)")
    try:
        art = export_decoder(args.hf, args.output, max_seq=args.max_seq,
                             prefill_len=args.prefill_len, name=args.name, weights=args.weights,
                             target=args.target, openmp=args.openmp, native=not args.portable,
                             build=not args.no_build, weight_storage=args.weight_storage)
    except BuildError as e:
        print(f"aotc export: {e}", file=sys.stderr)
        return 1
    except NotImplementedError as e:
        print(f"aotc export: not implemented: {e}", file=sys.stderr)
        return 2
    m = art.manifest
    print(f"exported {m['family']} {m['model']} -> {art.out_dir}/ ({m['target']}, weights "
          f"{m['weights']})")
    print(f"  vocabulary {m['vocab_size']}, max-seq {m['max_seq']}, prefill-len "
          f"{m['prefill_len']}, KV cache {m['kv_cache_bytes']:,} bytes, workspace "
          f"{m['workspace_bytes']:,} bytes, weights {m['weights_bytes']:,} bytes "
          f"({m['weight_storage']}, {len(m['bfloat16_weights'])} matrices bfloat16)")
    for f in art.files:
        print(f"  {art.out_dir / f}")
    return 0


def _verify(args) -> int:
    from aot.tools.verify import verify
    from aot.tools.verify_decoder import is_decoder, verify_decoder
    check = verify_decoder if is_decoder(args.folder) else verify
    try:
        report = check(args.folder, tolerance=args.tolerance, seed=args.seed,
                       trials=args.trials)
    except NotImplementedError as e:
        print(f"aotc verify: not built: {e}", file=sys.stderr)
        return 2
    print(f"aotc verify {args.folder}:")
    print(report)
    return 0 if report.ok else 1


def _inspect(args) -> int:
    from aot.export.signature import UsageError
    from aot.tools.inspection import inspect_model
    for flag, value in (("--peak-gflops", args.peak_gflops), ("--peak-gbs", args.peak_gbs)):
        if value is not None and not value > 0:
            raise UsageError(f"{flag} requires a positive number, got {value}")
    if args.hf or args.decode:
        report = _inspect_decoder(args)
    elif args.function is None:
        raise UsageError("inspect requires MODULE:FUNCTION, an ONNX file, or --hf DIR --decode")
    else:
        report = inspect_model(args.function, args.input, checkpoint=args.checkpoint,
                               weight_storage=args.weight_storage,
                               maxima=_maxima(args.max), quantize=args.quantize,
                               calibration=args.calibration)
    if not args.no_text:
        print(report.text())
    if args.html:
        from pathlib import Path

        from aot.tools.page import to_html
        from aot.tools.roofline import ProbeError, machine_peaks
        try:
            peaks = machine_peaks(args.peak_gflops, args.peak_gbs)
        except ProbeError as e:
            raise UsageError(str(e)) from None
        Path(args.html).write_text(to_html(report, peaks))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def _inspect_decoder(args):
    from aot.export.signature import UsageError
    from aot.tools.inspection import inspect_decoder
    if not (args.hf and args.decode):
        raise UsageError("--hf and --decode go together: aotc inspect --hf DIR --decode "
                         "--max-seq N")
    given = [f for f, v in (("MODULE:FUNCTION", args.function), ("--input", args.input),
                            ("--checkpoint", args.checkpoint)) if v]
    if given:
        raise UsageError(f"--hf DIR --decode takes no {', '.join(given)}")
    if args.max_seq is None:
        raise UsageError("--decode requires --max-seq N (the positions the cache holds)")
    try:
        return inspect_decoder(args.hf, max_seq=args.max_seq, prefill_len=args.prefill_len,
                               step=args.step, weight_storage=args.weight_storage)
    except NotImplementedError as e:
        raise UsageError(f"not implemented: {e}") from None


def _onnx_report(args) -> int:
    from aot.export.onnx_model import OnnxFunction, default_inputs
    from aot.export.signature import UsageError
    from mlframework.models.onnx import OnnxImportError
    from mlframework.models.onnx.report import report
    fn = OnnxFunction(args.model)
    shapes = None
    if args.input:
        given = {s.name: s.spec.dims for s in default_inputs(fn, args.input)}
        shapes = {i.name: given[n] for i, n in zip(fn.inputs, given)}
    try:
        result = report(fn.proto, shapes)
    except OnnxImportError as e:
        raise UsageError(str(e)) from None
    print(f"aotc onnx-report {args.model}:")
    print(result)
    return 0 if result.supported else 1


_COMMANDS = {"export": _export, "verify": _verify, "inspect": _inspect,
             "onnx-report": _onnx_report}


if __name__ == "__main__":
    sys.exit(main())
