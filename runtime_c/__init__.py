"""Package data, shipped as `aot.runtime_c`: the C runtime that generated code includes
(GEMM, conv, math, status codes). Read through `aot.resources.runtime_dir()`."""
