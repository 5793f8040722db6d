"""aot: the ahead-of-time compiler behind the "c" backend and the `aotc` command."""
