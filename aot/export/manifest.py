"""`manifest.json` of an export: what was exported from what, its interface, sizes,
kernels (with their FLOPs, bytes and source lines) and, with `--train`, the training
step's state layout. `aotc verify` and `aotc inspect` read it back.
"""
from __future__ import annotations

from pathlib import Path

from aot.export.artifact import workspace_bytes
from aot.passes.weight_packing import CHANNEL_AXIS, FLOAT16, PAIRS


def manifest_of(name, reference, checkpoint, traced, stage, ins, outs, segment, options, tc,
                src_hash, crc, train_info, train_stage, train) -> dict:
    """The manifest's dict (see `aot.export.model.export_model` for the arguments' sources)."""
    values = stage.program.values

    def kernels(st):
        out = []
        for cost, k in zip(st.costs, st.kernels):
            sources = sorted({st.program.values[n].source for n in k.nodes
                              if st.program.values[n].source})
            out.append({**cost, "reason": k.reason, "sources": sources})
        return out
    m = {
        "format": "aotc-export", "name": name, "tool": "aotc", "tool_version": options["version"],
        "function": reference,
        "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
        "target": tc.target, "weights": options["weights"], "openmp": options["openmp"],
        "weight_storage": options["weight_storage"],
        "packed_weights": sorted(v.scope for v in values.values() if "packing" in v.attrs),
        # stored rounded to bfloat16, so `aotc verify` rounds them in its reference too
        "rounded_weights": sorted(v.scope for v in values.values()
                                  if v.attrs.get("packing") == PAIRS),
        "float16_weights": sorted(v.scope for v in values.values()
                                  if v.attrs.get("packing") == FLOAT16),
        # stored as int8 with a scale per index of the axis given: verify uses Q * scale
        "quantize": options.get("quantize"),
        # --quantize int8: {weight name: scale of the int8 activations its products read}
        "activation_scales": options.get("activation_scales"),
        "quantized_weights": {v.scope: CHANNEL_AXIS[v.attrs["packing"]]
                              for v in sorted(values.values(), key=lambda v: v.scope or "")
                              if v.attrs.get("packing") in CHANNEL_AXIS},
        # a QDQ model's products (aot/passes/qdq.py): each on the int8 kernels ("path":
        # "int8", its activations' type and zero point) or on the float path, with the reason
        "qdq_products": stage.qdq,
        # each symbolic dimension and its maximum; a shape names its symbols ("N")
        "symbols": dict(stage.program.symbols),
        "inputs": [{k: i[k] for k in ("name", "dtype", "shape")} for i in ins],
        "outputs": [{k: o[k] for k in ("name", "dtype", "shape")} for o in outs],
        "arena_bytes": workspace_bytes(stage.plan.arena_bytes),  # at the maxima
        "weights_bytes": segment.nbytes,
        "weights_crc32": f"{crc:08x}", "source_hash": src_hash,
        "variables": {k: list(a.shape) for k, a in traced.variables.items()},
        "kernels": kernels(stage),
        "total_flops": sum(c["flops"] for c in stage.costs),
        "nodes": len(values),
    }
    if train_info:
        m["train"] = {
            "labels": [{"name": p["name"], "dtype": p["dtype"], "shape": p["shape"]}
                       for p in train_info["inputs"][len(ins):]],
            "state_bytes": train_info["state_bytes"],
            "arena_bytes": train_info["arena_bytes"],
            "run_state_arena_bytes": train_info["run_state"]["arena_bytes"],
            "state": [{k: s[k] for k in ("name", "offset", "type", "trainable")}
                      for s in train_info["state"]],
            "loss": getattr(train.loss, "__name__", str(train.loss)),
            "optimizer": str(train.optimizer) if isinstance(train.optimizer, str)
            else type(train.optimizer).__name__,
            "kernels": kernels(train_stage),
        }
    return m
