"""The program form the passes read and write: `Program` and `Value` (program), affine
index math (indexing), the target-neutral kernel description (kernel) and the walk of a
fused kernel's values at an index (walk). Knows the graph IR and nothing above it."""

__all__: list[str] = []  # the modules are imported by name
