"""`export_decoder`: a HuggingFace causal language model as a C library that generates
token by token (what `aotc export --hf DIR --decode` runs).

    art = export_decoder("path/to/gpt2", "build/lm", max_seq=128, name="lm")

The library has two functions over a key/value cache the caller owns
(NAME_KV_CACHE_BYTES): NAME_prefill runs a prompt of up to NAME_MAX_SEQ tokens and
NAME_decode_step appends one token at a given position; both write the logits of the
next token. Their programs are the model family's own forward with
`cache_size=max_seq` (`mlframework.models.hf`, as `hf.generate` runs it), traced by
`trace_stateful`: the weights and the caches are parameters, the caches' new values
outputs. The weights live once in the constant segment, which both programs read; the
caches' new values are written over the old ones in place (the only reader of a cache
is the dynamic_update_slice that writes it, checked here).

With weight_storage="bfloat16" every dense-layer weight matrix (and, for tied
embeddings, a [dim, vocab] copy of the table for the output projection, which then no
longer reads the table) is stored once as bfloat16 pair panels
(aot/passes/weight_packing.py), read in place by both programs' GEMV and widened on the
fly by the GEMM (runtime_c/mlf_gemm_bf16.h); the embedding tables, norms and biases stay
float32. The model computed is the float32 model with those matrices rounded to
bfloat16 (to nearest, ties to even); the manifest lists them (`bfloat16_weights`).

OUTDIR receives NAME.h, NAME_prefill.c, NAME_decode.c, the weight files, a Makefile,
runtime/ and manifest.json, and libNAME.so and libNAME.a unless build=False.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aot.export import artifact
from aot.export.model import (EMBED_MAX_BYTES, VERSION, WEIGHT_MODES, check_name,
                              write_artifact)
from aot.export.signature import InputSpec, UsageError
from aot.export.targets import toolchain
from aot.export.trace import Traced, trace_stateful
from aot.passes.weight_packing import PAIRS, pair_panels
from mlframework import graph as G
from mlframework.core import shapes
from mlframework.graph.gen_optypes import Op

CACHE = "/attention/cache/"
STORAGES = ("float32", "bfloat16")


def export_decoder(folder, out_dir, *, max_seq: int, prefill_len: int | None = None,
                   name: str = "model", weights: str = "auto", target: str | None = None,
                   openmp: bool = False, native: bool = True, build: bool = True,
                   weight_storage: str = "float32"):
    """Exports the causal language model in HuggingFace folder `folder` (see
    `mlframework.models.hf.load`) for sequences of up to `max_seq` tokens.

    Args:
        prefill_len: tokens NAME_prefill runs in one pass (default max_seq); a longer
            prompt's remaining tokens go through the decode step one by one. The pass
            always computes prefill_len positions, so a smaller value makes short
            prompts cheaper.
        name, weights, target, openmp, native, build: as for `export_model`.
        weight_storage: "float32" or "bfloat16" (see above).

    Raises:
        UsageError: a folder that does not load, an encoder model, max_seq or
            prefill_len outside [1, the model's positions], a bad name, weights mode or
            weight storage.
        NotImplementedError: weight_storage "float16" (no float16 GEMM for dense layers).
        BuildError: the C compiler failed.
    """
    check_name(name)
    if weights not in WEIGHT_MODES + ("auto",):
        raise UsageError(f"--weights must be one of {', '.join(WEIGHT_MODES)}, got {weights!r}")
    tc = toolchain(target, native)
    started = time.perf_counter()
    compiled = compile_decoder(folder, max_seq=max_seq, prefill_len=prefill_len, name=name,
                               weight_storage=weight_storage)
    model, ctx, stages, packed = compiled.model, compiled.ctx, compiled.stages, compiled.packed
    prefill, step = compiled.traced["prefill"], compiled.traced["decode"]
    prefill_len = compiled.prefill_len
    segment, layout = _layout(ctx, prefill, packed)
    consts = {k: segment.add_plan(s.program, s.plan, f"{k} ") for k, s in stages.items()}
    if weights == "auto":
        weights = "embed" if segment.nbytes <= EMBED_MAX_BYTES else \
            ("file" if tc.target.startswith("wasm") else "blob")
    info = _interface(name, model, max_seq, prefill_len, layout, stages, weights, VERSION)
    info["bfloat16_weights"] = len(packed)
    info["weights_bytes"] = segment.nbytes
    env = artifact.environment("export")
    files: dict[str, str | bytes] = {}
    for k, t in (("prefill", prefill), ("decode", step)):
        files[f"{name}_{k}.c"] = stages[k].source + env.get_template(f"decoder_{k}.c.j2").render(
            **info, args=_arguments(t, layout), consts_offset=consts[k])
    src_hash = artifact.source_hash(*(f for f in files.values() if isinstance(f, str)))
    blob = segment.tobytes() if weights != "embed" else b""
    files[f"{name}.h"] = env.get_template("decoder.h.j2").render(
        **info, source_hash=src_hash, weights_crc=artifact.crc32(blob), openmp=openmp)
    files.update(artifact.render_weights(name, segment, weights, VERSION))
    objects = [f"{name}_prefill.o", f"{name}_decode.o", f"{name}_weights.o"] + \
        ([f"{name}_weights_blob.o"] if weights == "blob" else [])
    libs = [f"lib{name}.a"] + ([f"lib{name}.so"] if tc.shared else [])
    files["Makefile"] = artifact.render_makefile(name, VERSION, tc, openmp, objects, libs,
                                                 blob=weights == "blob")
    manifest = {
        "format": "aotc-decoder", "name": name, "tool_version": VERSION,
        "model": str(Path(folder).resolve()), "family": model.family.name,
        "target": tc.target, "weights": weights, "openmp": openmp,
        "weight_storage": weight_storage, "bfloat16_weights": sorted(packed),
        "vocab_size": info["vocab"], "max_seq": max_seq, "prefill_len": prefill_len,
        "kv_cache_bytes": info["cache_bytes"], "workspace_bytes": info["workspace_bytes"],
        "weights_bytes": segment.nbytes, "weights_crc32": f"{artifact.crc32(blob):08x}",
        "source_hash": src_hash,
        "kv_cache": [{k: c[k] for k in ("name", "offset", "shape")} for c in layout["cache"]],
        "kernels": {k: len(s.kernels) for k, s in stages.items()},
        "flops": {k: sum(c["flops"] for c in s.costs) for k, s in stages.items()},
        "export_seconds": round(time.perf_counter() - started, 3),
    }
    return write_artifact(out_dir, name, manifest=manifest, files=files, tc=tc, libs=libs,
                          build=build)


@dataclass
class Compiled:
    """A decoder through the passes: the loaded model, the Context of the weights as
    stored and the caches, the one-pass prompt length, the traced programs and their
    stages by "prefill" and "decode", and {weight: packing} of the packed weights."""

    model: Any
    ctx: Any
    prefill_len: int
    traced: dict[str, Traced]
    stages: dict[str, artifact.Stage]
    packed: dict[str, str]


def compile_decoder(folder, *, max_seq: int, prefill_len: int | None = None,
                    name: str = "model", weight_storage: str = "float32") -> Compiled:
    """Loads `folder`, traces its prefill and decode step and compiles both (what
    `export_decoder` writes and `aotc inspect --hf DIR --decode` shows); the arguments
    and errors are export_decoder's, less those of writing and building."""
    if weight_storage == "float16":
        raise NotImplementedError("--weight-storage float16 with --decode: the runtime has no "
                                  "float16 GEMM for dense layers (float16 storage packs "
                                  "convolution weights only); use --weight-storage bfloat16")
    if weight_storage not in STORAGES:
        raise UsageError(f"--weight-storage must be one of {', '.join(STORAGES)} with --decode, "
                         f"got {weight_storage!r}")
    model = _load(folder)
    limit = model.max_positions
    prefill_len = max_seq if prefill_len is None else prefill_len
    if not 1 <= max_seq <= limit:
        raise UsageError(f"--max-seq {max_seq}: {model.family.name} {folder} has "
                         f"{limit} positions; give 1 <= --max-seq <= {limit}")
    if not 1 <= prefill_len <= max_seq:
        raise UsageError(f"--prefill-len {prefill_len} must lie in [1, --max-seq {max_seq}]")
    cfg, ctx = stored_context(model, weight_storage)
    _add_caches(model, cfg, ctx, max_seq)
    prefill = _trace(model, cfg, ctx, max_seq, prefill_len)
    step = _trace(model, cfg, ctx, max_seq, None)
    traced = {"prefill": prefill, "decode": step}
    stages = {k: artifact.compile_stage(
        t.program, entry=f"{name}_{k}_forward", weight_storage=weight_storage,
        params=_weight_params(t) if weight_storage == "bfloat16" else ())
        for k, t in traced.items()}
    for k, t in traced.items():
        _check_in_place(stages[k], t)
    return Compiled(model, ctx, prefill_len, traced, stages, _packed(stages, traced))


def _load(folder):
    from mlframework.models import hf
    try:
        model = hf.load(folder, backend="c")
    except (FileNotFoundError, hf.UnsupportedModelError, hf.WeightsError) as e:
        raise UsageError(f"--hf {folder}: {e}") from None
    if not model.causal:
        raise UsageError(f"--hf {folder}: {model.family.name} is an encoder; --decode "
                         "exports causal language models (GPT-2, LLaMA, Mistral, Qwen2)")
    return model


def stored_context(model, weight_storage: str):
    """(the configuration an export of `model` with `weight_storage` traces, a Context
    with the weights it stores, float32): the model's own (shared Tensors) and, where
    bfloat16 storage unties tied embeddings (the head then reads its own halved copy),
    the output projection `lm_head/dense/weights` [dim, vocab], the table transposed.
    `aotc verify` runs the same, with `bfloat16_weights` rounded."""
    from mlframework.ml import Context
    from mlframework.models.hf.decoding import share_weights
    cfg = model.config
    if weight_storage == "bfloat16" and cfg.tied:
        cfg = dataclasses.replace(cfg, tied=False)
    ctx = Context(seed=0)
    share_weights(model, ctx)
    if cfg.tied != model.config.tied:
        table, head = _untied_head(model, cfg)
        ctx.at_root().create_variable(head, np.ascontiguousarray(
            model.ctx.at_root().get_variable(table).value.numpy().T), trainable=False)
    return cfg, ctx


def _add_caches(model, cfg, ctx, size: int) -> None:
    """Creates in `ctx` the attention layers' key/value caches of `size` positions, as
    the first trace of a step makes them."""
    from mlframework.ml import ContextExec
    from mlframework.ml.context_exec import MissingVariablesError
    made = {}

    def probe(c, ids):
        out = _forward(model, cfg, c, ids, G.iota(np.int32, ids.shape, 1), size, None)
        made.update({v.name: v.value for v in c.at_root().variables()})
        return out
    try:
        ContextExec(None, ctx, probe, name="cache_probe").graph(shapes.make(np.int32, 1, 1))
    except MissingVariablesError as e:
        for n in e.names:
            ctx.at_root().create_variable(n, made[n], trainable=False)


def _untied_head(model, cfg) -> tuple[str, str]:
    """(the tied embedding table's variable, the variable of the [dim, vocab] output
    projection that the untied `cfg` reads instead): the family's first parameter, and
    the one parameter the untied configuration adds."""
    tied = model.family.params(model.config)
    extra = [p for p in model.family.params(cfg) if p.variable not in
             {q.variable for q in tied}]
    table = tied[0]
    if len(extra) != 1 or table.shape != (cfg.vocab_size, cfg.dim):
        raise NotImplementedError(f"{model.family.name}: untying the embeddings for the "
                                  "bfloat16 output projection expects the table first and one "
                                  f"head matrix, found {table} and {extra}")
    return table.variable, extra[0].variable


def _forward(model, cfg, ctx, ids, positions, size, last):
    zero = G.const(np.zeros((), np.int32))
    return model.family.forward(cfg, ctx, ids, positions, cache_size=size,
                                last=zero if last is None else last)


def _trace(model, cfg, ctx, size: int, prefill_len: int | None) -> Traced:
    """The prefill (ids int32 [1, prefill_len], last int32 [] -> logits [1, vocab] at
    `last`) or, for prefill_len None, the decode step (token int32 [1, 1], position
    int32 [] -> logits [1, vocab]); outputs after the logits: the caches' new keys and
    values. Every cache's write position is the prefill's 0 or the step's position."""
    positions = [v.name for v in ctx.at_root().variables() if v.name.endswith(CACHE +
                                                                               "position")]

    def at(c, start):
        for n in positions:
            c.at_root().assign(n, start)

    def prefill(c, inputs):
        ids, last = inputs
        at(c, G.const(np.zeros((), np.int32)))
        return _forward(model, cfg, c, ids, G.iota(np.int32, ids.shape, 1), size, last)

    def decode(c, inputs):
        token, position = inputs
        at(c, position)
        return _forward(model, cfg, c, token, G.reshape(position, (1, 1)), size, None)

    scalar = shapes.make(np.int32)
    if prefill_len is None:
        fn, specs = decode, [InputSpec("token", shapes.make(np.int32, 1, 1)),
                             InputSpec("position", scalar)]
    else:
        fn, specs = prefill, [InputSpec("ids", shapes.make(np.int32, 1, prefill_len)),
                              InputSpec("last", scalar)]
    traced = trace_stateful(fn, specs, ctx=ctx, name="prefill" if prefill_len else "decode")
    keep = [k for k, n in enumerate(traced.output_names)
            if k == 0 or not n.endswith(CACHE + "position")]
    traced.program.outputs = [traced.program.outputs[k] for k in keep]
    traced.output_names = [traced.output_names[k] for k in keep]
    traced.updated = traced.output_names[1:]
    return traced


def _check_in_place(stage, traced: Traced) -> None:
    """Each cache output must be a dynamic_update_slice of its own parameter, the
    parameter's only reader, written straight into the caller's buffer: then passing
    the cache as both is an in-place update.

    Raises:
        NotImplementedError: naming the cache that another node reads (a model whose
            attention reads the cache before its update is not supported).
    """
    prog = stage.program
    param = dict(zip(traced.state, prog.params))
    readers: dict[int, list[int]] = {}
    for v in prog.values.values():
        for i in v.inputs:
            readers.setdefault(i, []).append(v.id)
    for n, o in zip(traced.updated, prog.outputs[1:]):
        v = prog.values[o]
        ok = v.op is Op.DYNAMIC_UPDATE_SLICE and v.inputs[0] == param[n] and \
            readers.get(param[n]) == [o] and stage.plan.buffers[o].kind == "output"
        if not ok:
            raise NotImplementedError(f"exporting a decoder whose cache {n!r} is read other "
                                      "than by the dynamic_update_slice writing it (an "
                                      "in-place update is not possible)")


def _weight_params(traced: Traced) -> list[int]:
    """Positions among the program's parameters of the weights (not the caches)."""
    return [k for k, n in enumerate(traced.state) if CACHE not in n]


def _packed(stages, traced) -> dict[str, str]:
    """{weight name: packing} of the weights pack_weights packed, the same in both
    programs (they read one stored copy).

    Raises:
        NotImplementedError: naming a weight packed in one program and not the other.
    """
    found = {}
    for k, t in traced.items():
        prog = stages[k].program
        found[k] = {n: prog.values[p].attrs["packing"] for n, p in zip(t.state, prog.params)
                    if "packing" in prog.values[p].attrs}
    for n in found["prefill"].keys() ^ found["decode"].keys():
        raise NotImplementedError(f"weight {n!r} is read as a dense layer's matrix by only one "
                                  "of the prefill and decode programs, which share one stored "
                                  "copy: storing it in two layouts is not built")
    assert all(p == PAIRS for p in found["decode"].values()), found["decode"]
    return found["decode"]


def _layout(ctx, traced: Traced, packed: dict[str, str]):
    """(the constant segment: every weight once, those in `packed` as bfloat16 pair
    panels, and a zero int32, {"weights": {name: offset}, "cache": [{name, offset,
    shape, nbytes}], "cache_bytes"})."""
    segment = artifact.Segment()
    store = {v.name: v for v in ctx.at_root().variables()}
    cache: list[dict[str, Any]] = []
    weights: dict[str, int] = {}
    offset = 0
    out: dict[str, Any] = {"weights": weights, "cache": cache}
    for n in traced.state:
        if n.endswith(CACHE + "position"):
            continue
        a = store[n].numpy()
        if CACHE in n:
            cache.append({"name": n, "offset": offset, "shape": list(a.shape),
                          "nbytes": a.nbytes})
            offset = artifact.workspace_bytes(offset + a.nbytes)
        else:
            a = np.ascontiguousarray(a, np.float32)
            weights[n] = segment.add(n, pair_panels(a) if n in packed else a)
    out["zero"] = segment.add("int32 zero (the unused cache positions)", np.zeros(1, np.int32))
    out["cache_bytes"] = artifact.workspace_bytes(offset)
    return segment, out


def _arguments(traced: Traced, layout) -> dict:
    """The C expressions of the entry's input and output pointers."""
    where = {c["name"]: c["offset"] for c in layout["cache"]}
    ins = []
    for n in traced.state:
        if n in where:
            ins.append(f"cache + {where[n]}")
        elif n in layout["weights"]:
            ins.append(f"(void*)(weights + {layout['weights'][n]})")
        else:
            ins.append(f"(void*)(weights + {layout['zero']})")
    ins += [f"(void*){n}" if n == "ids" else f"(void*)&{n}" for n in traced.input_names]
    outs = ["(void*)logits"] + [f"cache + {where[n]}" for n in traced.updated]
    return {"inputs": ins, "outputs": outs}


def _interface(name, model, max_seq, prefill_len, layout, stages, weights, version) -> dict:
    arenas = {k: artifact.workspace_bytes(s.plan.arena_bytes) for k, s in stages.items()}
    ids_bytes = artifact.workspace_bytes(4 * prefill_len)
    return {"name": name, "P": name.upper(), "version": version, "family": model.family.name,
            "model": str(model.folder), "vocab": model.config.vocab_size, "max_seq": max_seq,
            "prefill_len": prefill_len, "cache": layout["cache"],
            "cache_bytes": layout["cache_bytes"], "prefill_arena": arenas["prefill"],
            "workspace_bytes": max(arenas["prefill"] + ids_bytes, arenas["decode"]),
            "weights_mode": weights, "weights_bytes": None}


__all__ = ["Compiled", "compile_decoder", "export_decoder", "stored_context"]
