"""Flattening of nested tuples, lists and dicts into a list of leaves and back.

Anything that is not a tuple, list, dict or None is a leaf (subclasses such as
named tuples included). Dict keys are
visited in sorted order, as JAX does, so the structure is deterministic.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

_NODE_TYPES = frozenset({tuple, list, dict, type(None)})


class TreeDef:
    """The structure of a pytree, without its leaves. Hashable and comparable."""

    __slots__ = ("kind", "children", "keys", "num_leaves", "_hash")

    def __init__(self, kind: str, children: tuple = (), keys: tuple = ()):
        self.kind = kind  # "leaf", "none", "tuple", "list" or "dict"
        self.children, self.keys = children, keys
        self.num_leaves = 1 if kind == "leaf" else sum(c.num_leaves for c in children)
        self._hash = hash((kind, children, keys))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TreeDef) and self._hash == other._hash and (
            self.kind, self.children, self.keys) == (other.kind, other.children, other.keys)

    def __repr__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = ", ".join(map(repr, self.children))
        if self.kind == "dict":
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.keys, self.children))
            return "{" + inner + "}"
        return f"[{inner}]" if self.kind == "list" else f"({inner})"


LEAF = TreeDef("leaf")
_FLAT_TUPLES: dict[int, TreeDef] = {}


def flatten(tree: Any) -> tuple[list, TreeDef]:
    """Returns the leaves of `tree` in order and its structure."""
    if type(tree) is tuple and _NODE_TYPES.isdisjoint(map(type, tree)):
        treedef = _FLAT_TUPLES.get(len(tree))  # fast path: a tuple of leaves
        if treedef is None:
            treedef = _FLAT_TUPLES[len(tree)] = TreeDef("tuple", (LEAF,) * len(tree))
        return list(tree), treedef
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list) -> TreeDef:
    if type(tree) is tuple or type(tree) is list:
        kind = "tuple" if type(tree) is tuple else "list"
        return TreeDef(kind, tuple(_flatten(t, leaves) for t in tree))
    if type(tree) is dict:
        keys = tuple(sorted(tree))
        return TreeDef("dict", tuple(_flatten(tree[k], leaves) for k in keys), keys)
    if tree is None:
        return TreeDef("none")
    leaves.append(tree)
    return LEAF


def unflatten(treedef: TreeDef, leaves: Sequence[Any]) -> Any:
    """Rebuilds a pytree of structure `treedef` from `leaves`.

    Raises:
        ValueError: if the number of leaves does not match the structure.
    """
    if treedef is LEAF and len(leaves) == 1:
        return leaves[0]
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"unflatten requires {treedef.num_leaves} leaves, got {len(leaves)}")
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(treedef: TreeDef, it: Iterator[Any]) -> Any:
    if treedef.kind == "leaf":
        return next(it)
    if treedef.kind == "none":
        return None
    children = [_unflatten(c, it) for c in treedef.children]
    if treedef.kind == "dict":
        return dict(zip(treedef.keys, children))
    return tuple(children) if treedef.kind == "tuple" else children


def tree_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    """Applies `fn` to every leaf, keeping the structure."""
    leaves, treedef = flatten(tree)
    return unflatten(treedef, [fn(x) for x in leaves])


def leaf_paths(treedef: TreeDef) -> list[str]:
    """Where each leaf sits, in leaf order, as index text: `[0]['h']` (`""` for a leaf)."""
    if treedef.kind == "leaf":
        return [""]
    keys = treedef.keys if treedef.kind == "dict" else range(len(treedef.children))
    return [f"[{k!r}]{rest}" for k, c in zip(keys, treedef.children) for rest in leaf_paths(c)]
