"""The passes, one public function each, over plain data: simplify (which first puts
convolutions in canonical layouts, conv_layout, and widens half-precision dots,
dot_widening), pack_weights
(weight_packing), fuse (fusion), plan_memory (memory_plan); layouts holds the
contraction paths and kernel workspaces they decide. The order is in
`aot.build.pipeline`."""

__all__: list[str] = []  # the modules are imported by name
