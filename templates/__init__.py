"""Package data, shipped as `aot.templates`: the Jinja templates of the generated C
(`c/`: kernels, loop nests, the module; `c/export/`: the files of an exported library).
Read through `aot.resources.templates_dir()`."""
