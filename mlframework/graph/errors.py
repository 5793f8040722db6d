"""Errors raised while building graphs, in the form
"<op> requires <condition>, got <values>", followed by the user's source line."""
from __future__ import annotations

import os
import sys
from types import FrameType

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GraphBuildError(TypeError):
    """An op got input it cannot accept. The message ends with the user's
    source line, " (at file:line)", found when the error is created."""

    def __init__(self, message: str):
        if not message.endswith(")") or " (at " not in message:
            message = f"{message} (at {user_frame()})"
        super().__init__(message)


class ShapeError(GraphBuildError):
    """An op got inputs or attributes whose shapes it cannot accept."""


class SymbolicSizeError(ShapeError, NotImplementedError):
    """A size over symbols that the Dim algebra of sums and products cannot express (a
    stride > 1 over a symbolic axis needs floor division, which is not built): both a
    ShapeError and a NotImplementedError."""


class DTypeError(GraphBuildError):
    """An op got inputs whose dtypes it cannot accept."""


def user_frame() -> str:
    """The `file:line` of the innermost caller outside the mlframework package."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"
