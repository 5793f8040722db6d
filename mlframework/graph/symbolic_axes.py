"""Which axes of `Exec`'s arguments are symbolic: parsing `symbolic=` and laying it over
a call's leaves.

    G.Exec(backend, fn, symbolic={"x": "N, 64", "mask": "N, S"}, maxima={"N": 256})

An axes spec is a string of comma-separated entries, optionally in brackets, as the export
spec `x:float32[N,64]`: an identifier is a symbol, an int a static size the argument must
have, `_` a static size taken from the call, and one `...` any number of `_`. A spec
applies to every array leaf of its argument; a tuple, list or dict of specs mirrors the
argument's structure instead (None: all static).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import EllipsisType
from typing import Any

from mlframework.core import pytree, symbolic
from mlframework.core.pytree import TreeDef
from mlframework.core.shapes import Shape
from mlframework.core.symbolic import DimLike

# One parsed entry: a symbol's name, a static size, None for `_`, Ellipsis for `...`.
Entry = str | int | None | EllipsisType
Template = tuple[Entry, ...]


def parse(text: str, where: str) -> Template:
    """`"N, 64"` -> ("N", 64); `"[N, _, ...]"` -> ("N", None, ...).

    Raises:
        ValueError: an entry is none of identifier, int, `_`, `...`, or `...` repeats.
    """
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    entries: list[Entry] = []
    for raw in (e.strip() for e in body.split(",")) if body.strip() else ():
        if raw == "_":
            entries.append(None)
        elif raw == "...":
            entries.append(...)
        elif raw.isdigit():
            entries.append(int(raw))
        elif symbolic.SYMBOL.match(raw):
            entries.append(raw)
        else:
            raise ValueError(f"Exec(symbolic=...) for {where}: {raw!r} in {text!r} is none "
                             f"of a symbol (an identifier such as N), an int, _ or ...")
    if entries.count(...) > 1:
        raise ValueError(f"Exec(symbolic=...) for {where}: {text!r} has more than one ...")
    return tuple(entries)


def templates(spec: Any, treedef: TreeDef, names: Sequence[str]) -> list[Template | None]:
    """One template per leaf of the call's arguments (`treedef` is their tuple), from
    `spec`: a mapping by parameter name or a sequence by position.

    Raises:
        TypeError: a spec's structure does not mirror its argument, or names an unknown
            parameter.
    """
    args = treedef.children
    names = [names[i] if i < len(names) else f"args[{i}]" for i in range(len(args))]
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise TypeError(f"Exec(symbolic=...) names {', '.join(map(repr, unknown))}, which "
                            f"is not an argument of this call ({', '.join(names)})")
        per_arg = [spec.get(n) for n in names]
    else:
        per_arg = list(spec) + [None] * (len(args) - len(spec))
    out: list[Template | None] = []
    for name, s, child in zip(names, per_arg, args):
        out += _lay(s, child, name)
    return out


def _lay(spec: Any, treedef: TreeDef, where: str) -> list[Template | None]:
    if spec is None:
        return [None] * treedef.num_leaves
    if isinstance(spec, str):
        return [parse(spec, where)] * treedef.num_leaves
    if isinstance(spec, Mapping) and treedef.kind == "dict":
        return [t for k, c in zip(treedef.keys, treedef.children)
                for t in _lay(spec.get(k), c, f"{where}[{k!r}]")]
    if isinstance(spec, tuple | list) and treedef.kind in ("tuple", "list") and \
            len(spec) == len(treedef.children):
        return [t for i, (s, c) in enumerate(zip(spec, treedef.children))
                for t in _lay(s, c, f"{where}[{i}]")]
    raise TypeError(f"Exec(symbolic=...) for {where} requires a string such as 'N, 64', None, "
                    f"or a structure mirroring the argument {treedef!r}, got {spec!r}")


def abstract(template: Template | None, spec: Shape, where: str) -> Shape:
    """`spec` (a call's concrete leaf) with the template's symbols on their axes.

    Raises:
        ValueError: the leaf's rank or a static size differs from the template.
    """
    if template is None:
        return spec
    dims = spec.dims
    if ... in template:
        cut = template.index(...)
        extra = len(dims) - (len(template) - 1)
        if extra < 0:
            raise ValueError(_mismatch(where, template, spec, f"rank >= {len(template) - 1}"))
        template = template[:cut] + (None,) * extra + template[cut + 1:]
    if len(template) != len(dims):
        raise ValueError(_mismatch(where, template, spec, f"rank {len(template)}"))
    out: list[DimLike] = []
    for axis, (entry, d) in enumerate(zip(template, dims)):
        if isinstance(entry, str):
            out.append(symbolic.dim(entry))
        elif entry is None:
            out.append(d)
        elif entry != d:
            raise ValueError(_mismatch(where, template, spec, f"size {entry} on axis {axis}"))
        else:
            out.append(d)
    return Shape(spec.dtype, tuple(out))


def _mismatch(where: str, template: Template, spec: Shape, what: str) -> str:
    text = ", ".join("..." if e is ... else "_" if e is None else str(e) for e in template)
    return (f"argument {where} is declared symbolic=[{text}], which requires {what}; got "
            f"{spec}")


def leaf_names(treedef: TreeDef, names: Sequence[str]) -> list[str]:
    """`x`, `batch['image']`...: each leaf of the arguments, named by its parameter."""
    out = []
    for i, child in enumerate(treedef.children):
        base = names[i] if i < len(names) else f"args[{i}]"
        out += [base + path for path in pytree.leaf_paths(child)]
    return out


def symbols_of(spec: Any) -> set[str]:
    """Every symbol named anywhere in an Exec `symbolic=` argument."""
    if spec is None:
        return set()
    if isinstance(spec, str):
        return {e for e in parse(spec, "symbolic") if isinstance(e, str)}
    values = spec.values() if isinstance(spec, Mapping) else spec
    return set().union(*(symbols_of(v) for v in values)) if values else set()


__all__ = ["abstract", "leaf_names", "parse", "symbols_of", "templates"]
