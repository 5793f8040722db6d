"""C code generation: `emit_c` (emit) renders the kernel descriptions of the passes
through the templates in `templates/c/`: fused loop kernels (fused), contractions
(contraction), single-op kernels (single_ops), loop nests (nests), expressions
(expressions) and element types (ctypes_table). It reads the passes' decisions and
makes none."""

__all__: list[str] = []  # the modules are imported by name
