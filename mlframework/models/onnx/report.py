"""`report`: every operator of an ONNX model, its count and where it is supported (what
`aotc onnx-report MODEL.onnx` prints).

    print(report("model.onnx", input_shapes={"x": (1, 3, 224, 224)}))

Support on a backend means the importer converts the operator and the backend runs
every IR primitive the conversion built; export (`aotc export`) compiles the same
primitives as the "c" backend. The primitives are known when the model imports (its
dynamic dimensions given); otherwise the backends' columns follow the converter.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import mlframework as mlf
from mlframework.models.onnx.errors import OnnxImportError
from mlframework.models.onnx.importer import DEFAULT_DOMAINS, ImportedModel, read_model
from mlframework.models.onnx.ops import HANDLERS


@dataclass
class OperatorSupport:
    """One operator type of a model."""

    op_type: str
    domain: str
    count: int
    converter: bool
    backends: dict[str, bool]
    export: bool
    nodes: list[str] = field(default_factory=list)


@dataclass
class Report:
    operators: list[OperatorSupport]
    traced: bool
    note: str = ""

    @property
    def supported(self) -> bool:
        return all(o.converter and all(o.backends.values()) and o.export for o in self.operators)

    def __str__(self) -> str:
        names = list(self.operators[0].backends) if self.operators else mlf.backends.names()
        head = f"{'operator':<28}{'count':>6}  {'import':<7}" + "".join(
            f"{n:<7}" for n in names) + "export"
        lines = [head, "-" * len(head)]
        for o in self.operators:
            op = o.op_type if o.domain in DEFAULT_DOMAINS else f"{o.domain}.{o.op_type}"
            row = f"{op:<28}{o.count:>6}  {_mark(o.converter):<7}" + "".join(
                f"{_mark(o.backends[n]):<7}" for n in names) + _mark(o.export)
            if not o.converter:
                row += f"   e.g. node {o.nodes[0]!r}"
            lines.append(row)
        total = sum(o.count for o in self.operators)
        missing = [o for o in self.operators if not o.converter]
        lines.append(f"{len(self.operators)} operator types, {total} nodes; "
                     + (f"{len(missing)} not supported: "
                        f"{', '.join(o.op_type for o in missing)}" if missing
                        else "all supported"))
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "yes" if ok else "no"


def report(model, input_shapes=None) -> Report:
    """The operator report of `model` (path, bytes or ModelProto).

    Raises:
        OnnxImportError: for a file that is not an ONNX model.
    """
    proto = read_model(model)
    counts = Counter((n.domain, n.op_type) for n in proto.graph.node)
    names: dict = {}
    for n in proto.graph.node:
        names.setdefault((n.domain, n.op_type), []).append(n.name or "<unnamed>")
    backends = mlf.backends.names()
    supported = {b: mlf.backends.supported_ops(b) for b in backends}
    primitives: dict = {}
    note = ""
    try:
        imported = ImportedModel(proto, input_shapes)
        for n, used in zip(proto.graph.node, imported.node_primitives):
            primitives.setdefault((n.domain, n.op_type), set()).update(used)
        traced = True
    except OnnxImportError as e:
        traced = False
        note = (f"not traced, so the backend columns follow the converter table: "
                f"{str(e).splitlines()[0]}")
    rows = []
    for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][1])):
        domain, op_type = key
        converter = domain in DEFAULT_DOMAINS and op_type in HANDLERS
        used = primitives.get(key, set())
        runs = {b: converter and used <= supported[b] for b in backends}
        export = runs.get("c", converter)
        rows.append(OperatorSupport(op_type, domain, count, converter, runs, export,
                                    names[key][:3]))
    return Report(rows, traced, note)
