"""Building: `compiler` compiles C with cffi into libraries cached by source hash;
`pipeline.compile_program` runs every pass, the code generator and the compiler;
`python -m aot.build.prebuild` builds the runtime's GEMM and conv ahead."""

__all__: list[str] = []  # the modules are imported by name
