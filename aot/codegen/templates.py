"""The Jinja environments of the C templates (`templates/c/`, package data through
`aot.resources`): undefined names are errors, trailing newlines are kept.

    environment().get_template("kernel.c.j2")            # templates/c/
    environment("export").get_template("model.h.j2")     # templates/c/export/
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from aot.resources import templates_dir

if TYPE_CHECKING:
    import jinja2


@functools.cache
def environment(subfolder: str = "") -> jinja2.Environment:
    """The environment loading templates from `templates/c/<subfolder>` (jinja2 is imported
    on the first call: a warm start, which renders nothing, does not load it)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / subfolder)),
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
