"""Rendering an exported model's files: NAME.h, NAME.c, NAME_train.c, NAME_weights.c,
NAME_weights.S/.bin, the Makefile.

    stage = compile_stage(traced.program, entry="mlp_forward")
    source, ins, outs = render_inference(name, input_names, output_names, stage, segment,
                                         options)
    # and render_train, render_run_state, render_weights, render_header, render_makefile

Kernels come from the same passes and `emit_c` as the "c" backend; the
templates in `templates/c/export/` add the public interface around them.
All constants of every program live in one segment (`Segment`), so the three
weight modes (embed, blob, file) differ only in how that segment gets into
memory.
"""
from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from aot.codegen import ctypes_table as ct
from aot.codegen.emit import emit_c
from aot.codegen.templates import environment
from aot.export.cost import kernel_costs
from aot.passes.fusion import fuse
from aot.passes.memory_plan import MemoryPlan, plan_memory
from aot.passes.qdq import map_qdq
from aot.passes.quantization import quantize_int8
from aot.passes.simplify import simplify
from aot.passes.weight_packing import pack_weights
from aot.program.kernel import Kernel
from aot.program.program import Program
from aot.program.symbols import bound, upper
from mlframework.core.dtypes import DType, as_dtype
from mlframework.core.symbolic import is_symbolic, symbols_of
from mlframework.graph.gen_optypes import Op

ALIGN = 64


@dataclass
class Stage:
    """One program through the passes; `snapshots` holds (pass name, text) for inspect."""

    program: Program
    kernels: list[Kernel]
    plan: MemoryPlan
    source: str
    costs: list[dict]
    snapshots: list[tuple[str, str]] = field(default_factory=list)
    # (pass name, the program it left) for the passes that rewrite the program
    programs: list[tuple[str, Program]] = field(default_factory=list)
    # map_qdq's products of a QDQ model: which run on the int8 kernels, which stay float
    qdq: list[dict] = field(default_factory=list)


def compile_stage(program: Program, entry: str, weight_storage: str = "float32",
                  variables=None, params=(),
                  activation_scales: dict[str, float] | None = None) -> Stage:
    """Runs simplify, map_qdq (a QDQ model's products onto the int8 kernels, then simplify
    again; `Stage.qdq` lists them), quantize_int8 (with `activation_scales`, {weight name:
    scale of its products' input}, for `--quantize int8`), pack_weights (for
    `weight_storage`, on constants named in `variables` and the parameters at positions
    `params`), fuse, plan and emit (entry point `entry`, a static function that the
    export's templates wrap)."""
    snapshots, programs = [("traced", str(program))], [("traced", program)]
    program = simplify(program)
    snapshots.append(("simplify", str(program)))
    programs.append(("simplify", program))
    mapped, qdq = map_qdq(program)
    if qdq:
        program = simplify(mapped) if mapped is not program else program
        snapshots.append(("map_qdq", _qdq_text(qdq) + "\n" + str(program)))
        programs.append(("map_qdq", program))
    if activation_scales:
        program = quantize_int8(program, activation_scales)
        snapshots.append(("quantize_int8", str(program)))
        programs.append(("quantize_int8", program))
    program = pack_weights(program, weight_storage, variables, params)
    snapshots.append(("pack_weights", str(program)))
    programs.append(("pack_weights", program))
    kernels = fuse(program)
    snapshots.append(("fuse", "\n".join(f"k{t}_{k.name} [{k.kind}]: nodes {k.nodes} -> "
                                        f"{k.outputs}" for t, k in enumerate(kernels))))
    plan = plan_memory(program, kernels)
    snapshots.append(("plan", str(plan)))
    source = emit_c(program, kernels, plan, entry=entry, public=False)
    snapshots.append(("emit", f"{len(source.splitlines())} lines of C"))
    at_maxima = bound(program, program.symbols) if program.symbols else program
    return Stage(program, kernels, plan, source, kernel_costs(at_maxima, kernels), snapshots,
                 programs, qdq)


def _qdq_text(products: list[dict]) -> str:
    """map_qdq's products, one line each: the int8 kernels or the float path and why."""
    fast = sum(p["path"] == "int8" for p in products)
    lines = [f"QDQ products: {fast} on the int8 kernels, {len(products) - fast} on the float "
             "DequantizeLinear path"]
    for p in products:
        how = f"int8 x int8 -> int32, {p['activations']} activations, zero point " \
              f"{p['zero_point']}" if p["path"] == "int8" else f"float: {p['reason']}"
        lines.append(f"  {p['node']} ({p['op']}): {how}")
    return "\n".join(lines)


class Segment:
    """The read-only bytes of every constant, each at a 64-byte aligned offset."""

    def __init__(self):
        self.items: list[tuple[str, int, np.ndarray]] = []
        self.nbytes = 0

    def add(self, label: str, array: np.ndarray) -> int:
        offset = self.nbytes
        array = np.ascontiguousarray(array)
        self.items.append((label, offset, array))
        self.nbytes = _align(offset + array.nbytes)
        return offset

    def add_plan(self, program: Program, plan: MemoryPlan, prefix: str) -> int:
        """Adds a plan's constant segment; returns its base offset."""
        base = self.nbytes
        consts = {vid: b for vid, b in plan.buffers.items() if b.kind == "const"}
        for vid, b in sorted(consts.items(), key=lambda kv: plan.position(kv[1])):
            v = program.values[vid]
            label = f"{prefix}#{vid} {v.scope or v.op.value}".strip()
            self.items.append((label, base + plan.position(b), _array(v)))
        self.nbytes = _align(base + plan.const_bytes)
        return base

    def tobytes(self) -> bytes:
        out = bytearray(self.nbytes)
        for _, offset, a in self.items:
            raw = a.view(np.uint8).reshape(-1).tobytes()
            out[offset:offset + len(raw)] = raw
        return bytes(out)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def workspace_bytes(arena_bytes: int) -> int:
    """The workspace size an export states (NAME_ARENA_BYTES and the like): the planned
    arena rounded up to a multiple of ALIGN, and at least ALIGN, so that the header's
    `static unsigned char ws[NAME_ARENA_BYTES]` is never a zero-size array and
    `aligned_alloc(ALIGN, NAME_ARENA_BYTES)` is valid C11."""
    return _align(max(arena_bytes, 1))


def c_macro_names(names: list[str]) -> list[str]:
    """Upper-case C macro name parts for `names` (e.g. "logits/dense/weights" ->
    "LOGITS_DENSE_WEIGHTS"); names that would collide get the suffix _2, _3..."""
    out, seen = [], set()
    for n in names:
        base = "".join(c if c.isascii() and c.isalnum() else "_" for c in n).upper() or "_"
        macro, k = base, 1
        while macro in seen:
            k += 1
            macro = f"{base}_{k}"
        seen.add(macro)
        out.append(macro)
    return out


def _array(v) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(v.attrs["value"]).astype(v.dtype.numpy)
                                .reshape(v.shape))


def describe(name: str, dtype: DType, shape, is_input: bool,
             maxima: dict[str, int] | None = None) -> dict:
    """An array of the C interface. With symbolic dims (`maxima`: each symbol's maximum),
    "shape" names the symbols ("N"), "size" and "nbytes" are at the maxima (what a
    static array needs), and "size_c"/"nbytes_c" are C expressions of the symbols."""
    size = math.prod(shape)
    top = {s: v for s, v in (maxima or {}).items()}
    return {"name": name, "NAME": name.upper(), "dtype": dtype.value, "ctype": ct.STORAGE[dtype],
            "shape": [str(d) if is_symbolic(d) else d for d in shape],
            "max_shape": [upper(d, top) for d in shape],
            "size": upper(size, top), "nbytes": upper(size * dtype.itemsize, top),
            "size_c": c_dim(size), "nbytes_c": c_dim(size * dtype.itemsize),
            "symbols": sorted(symbols_of(shape)),
            "type": f"{dtype.value}[{', '.join(map(str, shape))}]", "is_input": is_input,
            "written": True}


def c_dim(d, spell=lambda s: f"(int64_t)({s})") -> str:
    """A dim as a C expression (int64_t arithmetic) with each symbol spelled by `spell`
    (default: the macro argument or parameter of that name, parenthesized)."""
    if not is_symbolic(d):
        return str(d)
    parts = []
    for monomial, c in d.terms:
        factors = ([str(c)] if c != 1 or not monomial else []) + [spell(x) for x in monomial]
        parts.append("*".join(factors))
    return "(" + " + ".join(parts).replace("+ -", "- ") + ")"


def symbol_args(program: Program) -> list[dict]:
    """The size arguments of the exported functions: one per symbol, in order."""
    return [{"name": s, "NAME": s.upper(), "max": top} for s, top in program.symbols.items()]


def _copies(program: Program, plan: MemoryPlan, out_ptrs: list[str], in_ptrs: list[str],
            segment: Segment, consts_expr: str, written: list[bool]) -> list[str]:
    """memcpy lines filling outputs that the kernels do not write: duplicates,
    outputs that are inputs, and constants."""
    lines: list[str] = []
    first: dict[int, int] = {}
    for k, o in enumerate(program.outputs):
        v = program.values[o]
        b = plan.buffers.get(o)
        if o in first:
            src = out_ptrs[first[o]]
        elif b is not None and b.kind == "output":
            first[o] = k
            continue
        elif v.op is Op.PARAMETER:
            src = in_ptrs[program.params.index(o)]
        else:  # a constant output
            src = f"{consts_expr} + {segment.add(f'output {k} (a constant)', _array(v))}"
        first.setdefault(o, k)
        written[k] = False
        lines.append(f"memcpy({out_ptrs[k]}, {src}, {c_dim(v.nbytes, str)});")
    return lines


def render_inference(name: str, input_names, output_names, stage: Stage, segment: Segment,
                     options: dict) -> tuple[str, list[dict], list[dict]]:
    """(C source of NAME.c, input descriptions, output descriptions)."""
    prog = stage.program
    base = segment.add_plan(prog, stage.plan, "")
    assert base == 0
    inputs = [describe(n, prog.values[p].dtype, prog.values[p].shape, True, prog.symbols)
              for n, p in zip(input_names, prog.params)]
    outputs = [describe(n, prog.values[o].dtype, prog.values[o].shape, False, prog.symbols)
               for n, o in zip(output_names, prog.outputs)]
    written = [True] * len(outputs)
    copies = _copies(prog, stage.plan, [o["name"] for o in outputs],
                     [f"(const char*){i['name']}" for i in inputs], segment, "consts", written)
    for o, w in zip(outputs, written):
        o["written"] = w
    wrapper = environment("export").get_template("model.c.j2").render(
        name=name, P=name.upper(), inputs=inputs, outputs=outputs, copies=copies,
        entry=f"{name}_forward", weights_mode=options["weights"], symbols=symbol_args(prog))
    return stage.source + wrapper, inputs, outputs


def render_train(name: str, traced, stage: Stage, segment: Segment,
                 class_labels: dict[str, int] | None = None) -> tuple[str, dict]:
    """(C source of NAME_train.c, the header's `train` description).

    class_labels: {label name: number of classes} for labels that index classes (those
    of a sparse categorical loss); NAME_train_step returns NAME_ERR_LABEL when one of
    their integer elements lies outside [0, classes).
    """
    prog = stage.program
    consts_offset = segment.add_plan(prog, stage.plan, "train ")
    state, offset = [], 0
    n_state = len(traced.state)
    for var, p, macro in zip(traced.state, prog.params[:n_state], c_macro_names(traced.state)):
        v = prog.values[p]
        state.append({"name": var, "macro": macro, "offset": offset,
                      "type": f"{v.dtype.value}{list(v.shape)}", "dtype": v.dtype.value,
                      "ctype": ct.STORAGE[v.dtype], "shape": list(v.shape),
                      "size": math.prod(v.shape), "trainable": traced.trainable.get(var, False),
                      "nbytes": v.nbytes})
        offset = _align(offset + int(v.nbytes))  # variables are static
    state_bytes = max(offset, ALIGN)
    state_offset = segment.nbytes
    initial = np.zeros(state_bytes, np.uint8)
    for s, var in zip(state, traced.state):
        raw = traced.variables[var].view(np.uint8).reshape(-1)
        initial[s["offset"]:s["offset"] + raw.size] = raw
    segment.add("initial training state", initial)
    inputs = [describe(n, prog.values[p].dtype, prog.values[p].shape, True, prog.symbols)
              for n, p in zip(traced.input_names, prog.params[n_state:])]
    class_labels = class_labels or {}
    checks = [{"name": i["name"], "size": i["size_c"], "classes": class_labels[i["name"]],
               "signed": not as_dtype(i["dtype"]).is_unsigned}
              for i in inputs if i["name"] in class_labels and as_dtype(i["dtype"]).is_int]
    out_ptrs = ["(char*)loss"] + [f"staging + {s['offset']}" for s in state]
    in_ptrs = [f"s + {s['offset']}" for s in state] + [f"(const char*){i['name']}"
                                                       for i in inputs]
    written = [True] * len(prog.outputs)
    copies = _copies(prog, stage.plan, out_ptrs, in_ptrs, segment,
                     f"weights + {consts_offset}", written)
    arena = stage.plan.arena_bytes
    workspace = _align(arena) + state_bytes
    source = stage.source + environment("export").get_template("train.c.j2").render(
        name=name, P=name.upper(), inputs=inputs, entry=f"{name}_train_forward",
        arena_bytes=_align(arena), state_offsets=[s["offset"] for s in state],
        output_ptrs=[p if w else "NULL" for p, w in zip(out_ptrs[1:], written[1:])],
        copies=copies, consts_offset=consts_offset, state_offset=state_offset, checks=checks,
        symbols=symbol_args(prog))
    summary = f"{len(state)} state variables, {sum(s['trainable'] for s in state)} trainable"
    return source, {"state": state, "state_bytes": state_bytes, "inputs": inputs,
                    "arena_bytes": workspace, "summary": summary, "checks": checks,
                    "state_offset": state_offset, "consts_offset": consts_offset}


def render_run_state(name: str, traced, stage: Stage, segment: Segment,
                     train: dict) -> tuple[str, dict]:
    """(C source of NAME_run_state.c, the header's `run_state` description): inference
    whose variables are read from a training state buffer (`train`, from
    `render_train`) instead of the exported constants.

    `traced` is the inference program with the variables as its first parameters
    (`aot.export.trace.trace_state_inference`).

    Raises:
        ValueError: a variable of the inference program that the training state lacks.
    """
    prog = stage.program
    consts_offset = segment.add_plan(prog, stage.plan, "run_state ")
    where = {s["name"]: s["offset"] for s in train["state"]}
    missing = [v for v in traced.state if v not in where]
    if missing:
        raise ValueError(f"the training state lacks the inference variables {missing}")
    n_state = len(traced.state)
    inputs = [describe(n, prog.values[p].dtype, prog.values[p].shape, True, prog.symbols)
              for n, p in zip(traced.input_names, prog.params[n_state:])]
    outputs = [describe(n, prog.values[o].dtype, prog.values[o].shape, False, prog.symbols)
               for n, o in zip(traced.output_names, prog.outputs)]
    in_ptrs = [f"s + {where[v]}" for v in traced.state] + \
        [f"(const char*){i['name']}" for i in inputs]
    written = [True] * len(outputs)
    copies = _copies(prog, stage.plan, [o["name"] for o in outputs], in_ptrs, segment,
                     f"weights + {consts_offset}", written)
    for o, w in zip(outputs, written):
        o["written"] = w
    arena = workspace_bytes(stage.plan.arena_bytes)
    source = stage.source + environment("export").get_template("run_state.c.j2").render(
        name=name, P=name.upper(), inputs=inputs, outputs=outputs, copies=copies,
        entry=f"{name}_state_forward", state_ptrs=in_ptrs[:n_state],
        consts_offset=consts_offset, symbols=symbol_args(prog))
    return source, {"arena_bytes": arena, "variables": list(traced.state)}


def render_header(name: str, inputs, outputs, stage: Stage, segment: Segment, options: dict,
                  source_hash: str, train: dict | None, weights_crc: int) -> str:
    mode = options["weights"]
    docs = {
        "embed": f"compiled into the library ({name}_weights.c, static const arrays).",
        "blob": f"{name}_weights.bin, linked into the library through {name}_weights.S "
                "(.incbin); nothing to load.",
        "file": f"read at run time: call {name}_load_weights(\"{name}_weights.bin\") once "
                f"before {name}_run; the file's size and CRC-32 must match "
                f"{name.upper()}_WEIGHTS_BYTES and {name.upper()}_WEIGHTS_CRC32.",
    }
    return environment("export").get_template("model.h.j2").render(
        name=name, P=name.upper(), version=options["version"], function=options["function"],
        inputs=inputs, outputs=outputs, arena_bytes=workspace_bytes(stage.plan.arena_bytes),
        weights_bytes=segment.nbytes, weights_mode=mode, weights_doc=docs[mode],
        weights_crc=weights_crc, openmp=options["openmp"], source_hash=source_hash,
        train=train, symbols=symbol_args(stage.program),
        arena_for=arena_bytes_for(stage.plan, stage.program.symbols))


def arena_bytes_for(plan: MemoryPlan, maxima: dict[str, int]) -> str:
    """NAME_ARENA_BYTES_FOR's C expression of the symbols (macro arguments): the planned
    workspace at those sizes (`MemoryPlan.arena_for`), rounded as `workspace_bytes`
    rounds (the arena is never empty: every symbol is >= 1)."""
    if not is_symbolic(plan.arena_for):
        return str(workspace_bytes(plan.arena_bytes))
    return f"(({c_dim(plan.arena_for)} + {ALIGN - 1}) / {ALIGN} * {ALIGN})"


def render_weights(name: str, segment: Segment, mode: str, version: str
                   ) -> dict[str, str | bytes]:
    """The weight files for `mode`: {filename: text or bytes}."""
    files: dict[str, str | bytes] = {}
    items = []
    if mode == "embed":
        for index, (label, offset, a) in enumerate(segment.items):
            if a.size == 0:
                continue
            items.append({"index": index, "label": label.replace("*/", "* /"), "offset": offset,
                          "ctype": _ctype(a), "count": a.size, "type": f"{a.dtype}{list(a.shape)}",
                          "text": c_initializer(a)})
    else:
        files[f"{name}_weights.bin"] = segment.tobytes()
    if mode == "blob":
        files[f"{name}_weights.S"] = environment("export").get_template("weights.S.j2").render(
            name=name, total=segment.nbytes, version=version)
    files[f"{name}_weights.c"] = environment("export").get_template("weights.c.j2").render(
        name=name, P=name.upper(), mode=mode, items=items, total=segment.nbytes, version=version)
    return files


def render_makefile(name: str, version: str, tc, openmp: bool, objects: list[str],
                    libs: list[str], blob: bool) -> str:
    """The export's Makefile for toolchain `tc` (`aot.export.targets.Toolchain`)."""
    return environment("export").get_template("Makefile.j2").render(
        name=name, version=version, target=tc.target, cc=tc.cc_text, ar=tc.ar_text,
        arch=tc.arch, openmp="-fopenmp" if openmp else "", pic="-fPIC " if tc.pic else "",
        objects=objects, libs=libs, blob=blob, zig="$(ZIG)" in tc.cc_text + tc.ar_text)


def _ctype(a: np.ndarray) -> str:
    try:
        return ct.STORAGE[as_dtype(a.dtype)]
    except (TypeError, ValueError, KeyError):
        return "uint8_t"


def c_initializer(a: np.ndarray) -> str:
    """The elements of `a` as a C initializer list (exact: floats round-trip)."""
    flat = a.reshape(-1)
    kind = a.dtype.kind
    if a.dtype.itemsize == 2 and kind == "V" or str(a.dtype) in ("bfloat16", "float16"):
        flat = flat.view(np.uint16)
        kind = "u"
    if kind == "f":
        fmt, suffix = ("%.9g", "f") if a.dtype.itemsize == 4 else ("%.17g", "")
        if np.isfinite(flat).all():
            text = ",".join(s + suffix if ("." in s or "e" in s) else s + ".0" + suffix
                            for s in (fmt % x for x in flat.tolist()))
            return _wrap(text)
        return _wrap(",".join(_float_literal(x, fmt, suffix) for x in flat.tolist()))
    if kind == "b":
        return _wrap(",".join("1" if x else "0" for x in flat.tolist()))
    if kind == "i" and a.dtype.itemsize == 8:
        return _wrap(",".join(f"{x}LL" if x != -2**63 else "INT64_MIN" for x in flat.tolist()))
    if kind == "u" and a.dtype.itemsize == 8:
        return _wrap(",".join(f"{x}ULL" for x in flat.tolist()))
    if kind in "iu":
        return _wrap(",".join(map(str, flat.tolist())))
    return _wrap(",".join(map(str, flat.view(np.uint8).tolist())))


def _float_literal(x: float, fmt: str, suffix: str) -> str:
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "INFINITY" if x > 0 else "-INFINITY"
    s = fmt % x
    return (s if ("." in s or "e" in s) else s + ".0") + suffix


def _wrap(text: str, width: int = 100) -> str:
    """Breaks a long initializer list into lines near `width` characters."""
    if len(text) <= width:
        return text
    out, start = [], 0
    while start < len(text):
        end = text.find(",", start + width)
        if end < 0:
            out.append(text[start:])
            break
        out.append(text[start:end + 1])
        start = end + 1
    return "\n    ".join(out)


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def source_hash(*sources: str) -> str:
    h = hashlib.sha256()
    for s in sources:
        h.update(s.encode())
    return h.hexdigest()[:16]
