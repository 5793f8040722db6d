"""Control-flow kernels in C: the loop or branch in the entry point that runs the
functions of a kernel's sub-programs.

    block = render(program, k, t, names, "arena + 4096", ["mlf_run_k3_0"])

Each sub-program is a function `int f(void* const* inputs, void* const* outputs,
char* arena, const char* consts)` (rendered from `templates/c/subprogram.c.j2` by
`emit`). A loop keeps its carry in two buffers of the kernel's scratch
(`aot.passes.memory_plan.workspace`): a step reads `cur` and writes `nxt`, then the
pointers swap; the first step reads a copy of the initial carry, the final carry is
copied to the results. scan reads x and writes y through pointers advanced by one
slice per step (from the end when reversed). Nothing is allocated.

With symbolic shapes the scratch's offsets, copy and slice sizes and a scan's length
are C expressions of the symbols' variables
(`aot.program.symbols.c_of`), which every sub-program function also takes, after
`consts`, in `Program.symbols` order.
"""
from __future__ import annotations

from aot.passes.memory_plan import workspace
from aot.program.kernel import Kernel
from aot.program.program import Program
from aot.program.symbols import c_name, c_of
from mlframework.core.dtypes import DType
from mlframework.graph.gen_optypes import Op


def render(program: Program, k: Kernel, t: int, names: dict[int, str], scratch: str,
           functions: list[str]) -> str:
    """The C block running control-flow kernel `k` (kernel index t); `names`: buffer
    pointer of each value; `scratch`: the C expression of its scratch; `functions`:
    the names of its sub-programs' functions, in `Kernel.bodies` order."""
    v = program.values[k.nodes[0]]
    ws = workspace(program, k)
    results = _results(program, k, ws)
    tail = "".join(f", {c_name(s)}" for s in program.symbols)  # the bodies inherit them
    if v.op is Op.COND:
        body = _cond(program, v, names, results, functions, ws, tail)
    else:
        body = _loop(program, v, names, results, functions, ws, tail)
    where = v.source.replace("*/", "* /")
    lines = [f"{{  /* kernel {t}: {v.op.value}, {len(functions)} sub-programs; {where} */",
             f"  char* ws = {scratch}; (void)ws;", "  int status = MLF_OK;"]
    lines += ["  " + line for line in body]
    lines.append("}")
    return "\n  ".join(lines)


def _results(program, k, ws) -> dict[int, str]:
    """result index -> C pointer expression of where it goes (None-free: spares too)."""
    out = {program.values[o].attrs["index"]: f"b{o}" for o in k.outputs}
    out.update({r: f"(ws + {c_of(program, off)})" for r, off in ws.spare.items()})
    return out


def _array(name: str, items: list[str]) -> str:
    return f"void* {name}[{max(len(items), 1)}] = {{{', '.join(items) or '0'}}};"


def _cond(program, v, names, results, functions, ws, tail) -> list[str]:
    index, operands = v.inputs[0], v.inputs[1:]
    ins = [f"(void*){names[i]}" for i in operands]
    outs = [f"(void*){results[r]}" for r in range(len(results))]
    if program.values[index].dtype is DType.BOOL:
        pick = f"int which = {names[index]}[0] ? 1 : 0;"
    else:
        last = len(functions) - 1
        pick = (f"int which = {names[index]}[0] < 0 ? 0 : {names[index]}[0] > {last} ? "
                f"{last} : (int){names[index]}[0];")
    body = c_of(program, ws.body)
    lines = [_array("ins", ins), _array("outs", outs), pick, "switch (which) {"]
    for j, fn in enumerate(functions):
        lines.append(f"  case {j}: status = {fn}(ins, outs, ws + {body}, consts{tail}); break;")
    lines += ["  default: break;", "}", "if (status != MLF_OK) return status;"]
    return lines


def _loop(program, v, names, results, functions, ws, tail) -> list[str]:
    n = v.attrs["num_carry"]
    carry = v.inputs[:n]
    sizes = [c_of(program, program.values[i].nbytes) for i in carry]
    lines = [f"void* cur[{max(n, 1)}]; void* nxt[{max(n, 1)}];"]
    for i, (c, size) in enumerate(zip(carry, sizes)):
        lines.append(f"cur[{i}] = ws + {c_of(program, ws.current[i])}; "
                     f"nxt[{i}] = ws + {c_of(program, ws.following[i])};")
        lines.append(f"memcpy(cur[{i}], {names[c]}, {size});")
    if v.op is Op.SCAN:
        lines += _scan_steps(program, v, names, results, functions[0], ws, tail)
    else:
        lines += _while_steps(program, v, names, functions, ws, tail)
    for i, size in enumerate(sizes):
        if i in results:
            lines.append(f"memcpy({results[i]}, cur[{i}], {size});")
    return lines


def _swap(n: int) -> list[str]:
    return [f"for (int c = 0; c < {n}; ++c) {{ void* held = cur[c]; cur[c] = nxt[c]; "
            f"nxt[c] = held; }}"] if n else []


def _scan_steps(program, v, names, results, fn, ws, tail) -> list[str]:
    a = v.attrs
    n, nx, length = a["num_carry"], a["num_xs"], a["length"]
    xs, caps = v.inputs[n:n + nx], v.inputs[n + nx:]
    body = a["body"]  # its parameters: the carry, one slice of each x, the captures
    x_bytes = [c_of(body, body.values[p].nbytes) for p in body.params[n:n + nx]]
    y_bytes = [c_of(body, body.values[o].nbytes) for o in body.outputs[n:]]
    length = c_of(program, length)  # a symbolic length: its C variables' product
    step = f"({length} - 1 - s)" if a["reverse"] else "s"
    ins = [f"cur[{i}]" for i in range(n)]
    ins += [f"(char*){names[x]} + (long){step} * {b}" for x, b in zip(xs, x_bytes)]
    ins += [f"(void*){names[c]}" for c in caps]
    outs = [f"nxt[{i}]" for i in range(n)]
    outs += [f"(char*){results[n + j]} + (long){step} * {b}" for j, b in enumerate(y_bytes)]
    lines = [f"for (long s = 0; s < {length}; ++s) {{"]
    lines += ["  " + _array("ins", ins), "  " + _array("outs", outs),
              f"  status = {fn}(ins, outs, ws + {c_of(program, ws.body)}, consts{tail});",
              "  if (status != MLF_OK) return status;"]
    lines += ["  " + line for line in _swap(n)]
    return lines + ["}"]


def _while_steps(program, v, names, functions, ws, tail) -> list[str]:
    n = v.attrs["num_carry"]
    caps = v.inputs[n:]
    ins = [f"cur[{i}]" for i in range(n)] + [f"(void*){names[c]}" for c in caps]
    outs = [f"nxt[{i}]" for i in range(n)]
    test, step = functions
    flag, body = c_of(program, ws.flag), c_of(program, ws.body)
    return ["for (;;) {", "  " + _array("ins", ins), "  " + _array("outs", outs),
            f"  void* flag[1] = {{ws + {flag}}};",
            f"  status = {test}(ins, flag, ws + {body}, consts{tail});",
            "  if (status != MLF_OK) return status;",
            f"  if (!*(const uint8_t*)(ws + {flag})) break;",
            f"  status = {step}(ins, outs, ws + {body}, consts{tail});",
            "  if (status != MLF_OK) return status;",
            *["  " + line for line in _swap(n)], "}"]
