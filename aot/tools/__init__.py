"""The tools built on the compiler: the `aotc` command line (cli), `aotc inspect`
(inspection) and `aotc verify` (verify). Nothing is imported here, so that
`aotc --help` stays fast."""

__all__: list[str] = []  # the modules are imported by name
