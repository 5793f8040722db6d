"""Parsing what `aotc` is told about a model: `--input NAME:DTYPE[DIMS]` specs
and `MODULE:FUNCTION` references."""
from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re
import sys
import sysconfig
import traceback
from dataclasses import dataclass

from mlframework.core import shapes, symbolic
from mlframework.core.dtypes import DType, as_dtype
from mlframework.core.shapes import Shape
from mlframework.core.symbolic import DimLike

_SPEC = re.compile(r"^(?P<name>[A-Za-z_]\w*):(?P<dtype>\w+)\[(?P<dims>[\w,\s]*)\]$", re.ASCII)
_MAX = re.compile(r"^(?P<name>[A-Za-z_]\w*)=(?P<value>\d+)$", re.ASCII)


class UsageError(ValueError):
    """A command-line argument that the user must fix; `aotc` exits with status 2."""


C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto
    if inline int long register restrict return short signed sizeof static struct switch
    typedef union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex
    _Generic _Imaginary _Noreturn _Static_assert _Thread_local alignas alignof bool constexpr
    false nullptr static_assert thread_local true typeof typeof_unqual _BitInt _Decimal32
    _Decimal64 _Decimal128""".split())
# NAME.h is also included from C++ (it has extern "C" guards): its keywords cannot be
# parameter names either.
CPP_KEYWORDS = frozenset("""
    and and_eq asm bitand bitor catch char8_t char16_t char32_t class compl concept consteval
    constinit const_cast co_await co_return co_yield decltype delete dynamic_cast explicit
    export friend mutable namespace new noexcept not not_eq operator or or_eq private
    protected public reinterpret_cast requires static_cast template this throw try typeid
    typename using virtual wchar_t xor xor_eq""".split())
# dtype names that leave the width to the reader: float is float64 and int int64 in NumPy,
# but float and int32 in C
_WIDTHS = {"float": "float16, bfloat16, float32 or float64",
           "int": "int8, int16, int32 or int64", "uint": "uint8, uint16, uint32 or uint64"}


def check_c_name(name: str, option: str) -> None:
    """Raises UsageError when `name` (from `option`, e.g. "--input") cannot be a C or C++
    parameter name: a keyword of either language."""
    if name in C_KEYWORDS or name in CPP_KEYWORDS:
        language = "C" if name in C_KEYWORDS else "C++ (NAME.h is C++-compatible)"
        raise UsageError(f"{option} {name!r}: {name!r} is a keyword of {language}, so it "
                         f"cannot name a parameter of the exported function; rename it, e.g. "
                         f"{name}_in")


@dataclass(frozen=True)
class InputSpec:
    """One model input: a C identifier and its Shape."""

    name: str
    spec: Shape


def parse_input(text: str, option: str = "--input") -> InputSpec:
    """Parses `NAME:DTYPE[DIMS]`, e.g. `x:float32[1,784]` or `scale:float32[]`, given as
    `option` (named in the errors).

    DTYPE is an explicit name of `mlframework.core.dtypes.DType` (float32, int64...).
    A dim is a size or a symbol, an identifier such as N (`x:float32[N,784]`): a size
    chosen at run time, up to the maximum `--max N=256` declares (`parse_max`); the
    exported function takes it as an `int64_t N` argument.

    Raises:
        UsageError: naming the part that is wrong and showing the expected form: no
            NAME:DTYPE[DIMS], a NAME that is a C or C++ keyword, a bare `float`, `int`
            or `uint` (the widths are named), a NumPy alias such as `double`, or an
            unknown dtype.
    """
    match = _SPEC.match(text.strip())
    if not match:
        raise UsageError(f"{option} requires NAME:DTYPE[DIMS] such as x:float32[1,784], "
                         f"got {text!r}")
    name, dtype_name = match["name"], match["dtype"]
    check_c_name(name, option)
    if dtype_name in _WIDTHS:
        raise UsageError(f"{option} {text!r}: the bare dtype {dtype_name!r} does not say its "
                         f"width; write {_WIDTHS[dtype_name]}")
    try:
        dtype = as_dtype(dtype_name)
    except TypeError:
        dtype = None
    if dtype is None or dtype_name != dtype.value:
        explicit = f"write {dtype.value}, the explicit name of {dtype_name!r}" if dtype else \
            f"unknown dtype {dtype_name!r}; use one of {', '.join(d.value for d in DType)}"
        raise UsageError(f"{option} {text!r}: {explicit}")
    dims = [_dim(d, text, option) for d in match["dims"].replace(" ", "").split(",") if d]
    return InputSpec(name, shapes.make(dtype, *dims))


def _dim(text: str, spec: str, option: str) -> DimLike:
    if text.isdigit():
        return int(text)
    if not text.isidentifier() or text[0].isdigit():
        raise UsageError(f"{option} {spec!r}: the dimension {text!r} is neither a size (64) "
                         "nor a symbol (an identifier such as N)")
    check_c_name(text, f"{option} {spec!r}: the symbol")
    return symbolic.dim(text)


def parse_max(text: str) -> tuple[str, int]:
    """Parses `--max NAME=VALUE` (`N=256`): the largest value the symbol NAME of the
    --input specs takes at run time (the exported workspace is sized for it).

    Raises:
        UsageError: not NAME=VALUE with a positive integer VALUE.
    """
    match = _MAX.match(text.strip())
    if not match or int(match["value"]) < 1:
        raise UsageError(f"--max requires SYMBOL=MAXIMUM with a maximum >= 1, such as N=256, "
                         f"got {text!r}")
    return match["name"], int(match["value"])


def symbol_maxima(specs: list[InputSpec], maxima: dict[str, int] | None) -> dict[str, int]:
    """The symbols of `specs` (in order of first appearance: the order of the exported
    function's size arguments) with their maxima.

    Raises:
        UsageError: a symbol without a maximum, a maximum for no symbol of the inputs, a
            maximum below 1, or a symbol named like an input.
    """
    maxima = dict(maxima or {})
    order: list[str] = []
    for i in specs:
        for d in i.spec.dims:
            for s in sorted(symbolic.symbols_of([d])):
                if s not in order:
                    order.append(s)
    missing = [s for s in order if s not in maxima]
    if missing:
        raise UsageError(f"the symbol {missing[0]} of --input needs a maximum: add --max "
                         f"{missing[0]}=256 (the largest {missing[0]} the library serves)")
    unused = sorted(set(maxima) - set(order))
    if unused:
        raise UsageError(f"--max {unused[0]}={maxima[unused[0]]}: no --input has a dimension "
                         f"{unused[0]}; symbols of the inputs: {', '.join(order) or 'none'}")
    for s in order:
        if not isinstance(maxima[s], int) or isinstance(maxima[s], bool) or maxima[s] < 1:
            raise UsageError(f"--max {s}={maxima[s]!r}: a maximum is an integer >= 1")
        if s in {i.name for i in specs}:
            raise UsageError(f"the symbol {s} is also the name of an --input; both become "
                             "parameters of the exported function: rename one")
    return {s: maxima[s] for s in order}


def load_function(reference: str):
    """Imports `MODULE:FUNCTION`; MODULE is a dotted module name or a path to a .py file.

    Raises:
        UsageError: if the module or the function cannot be found, or the module has a
            syntax error, raises or calls sys.exit while imported (named, with its line).
    """
    module_name, sep, function_name = reference.rpartition(":")
    if not sep or not module_name or not function_name:
        raise UsageError(f"expected MODULE:FUNCTION such as examples/digits_mlp.py:model, "
                         f"got {reference!r}")
    path = pathlib.Path(module_name)
    user_file = path if path.suffix == ".py" else None
    try:
        if path.suffix == ".py":
            if not path.is_file():
                raise UsageError(f"module file {module_name!r} does not exist")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise UsageError(f"module file {module_name!r} cannot be loaded as Python")
            module = importlib.util.module_from_spec(spec)
            folder = str(path.resolve().parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except ModuleNotFoundError as e:
        raise UsageError(f"cannot import module {module_name!r}: {e}") from None
    except SyntaxError as e:  # IndentationError and TabError too
        where = f"{e.filename or module_name}:{e.lineno}" if e.lineno else module_name
        raise UsageError(f"module {module_name!r} has a syntax error at {where}: {e.msg}; "
                         "fix it and run again") from None
    except SystemExit as e:
        where = f" (at {error_origin(e, user_file)})" if e.__traceback__ else ""
        raise UsageError(f"importing module {module_name!r} called sys.exit({e.code!r})"
                         f"{where}: a script that parses its command line at import? Put "
                         "that under `if __name__ == \"__main__\":`") from None
    except Exception as e:
        raise UsageError(f"importing module {module_name!r} raised "
                         f"{describe_error(e, user_file)}; fix the module so that it "
                         "imports") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"module {module_name!r} has no function {function_name!r}")
    return function


def error_origin(error: BaseException, user_file=None) -> str:
    """`file:line` where `error` came from, for people: the innermost frame of its
    traceback in `user_file` (the user's module) when there is one, else the innermost
    frame outside aot, mlframework, the standard library and installed packages, else
    the innermost frame; "" without a traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    if user_file is not None:
        wanted = str(pathlib.Path(user_file).resolve())
        mine = [f for f in frames if str(pathlib.Path(f.filename).resolve()) == wanted]
        if mine:
            return f"{mine[-1].filename}:{mine[-1].lineno}"
    import mlframework
    libraries = [pathlib.Path(__file__).resolve().parents[1],  # aot
                 pathlib.Path(mlframework.__file__).resolve().parent]
    libraries += [pathlib.Path(sysconfig.get_paths()[k]).resolve()
                  for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    prefixes = tuple(f"{d}/" for d in libraries)
    user = [f for f in frames if not str(pathlib.Path(f.filename).resolve()).startswith(prefixes)
            and not f.filename.startswith("<")]
    frame = (user or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"


def describe_error(error: BaseException, user_file=None) -> str:
    """`Type: first line of the message (at file:line)` on one line, for a UsageError."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    where = error_origin(error, user_file)
    if where and where in first:  # mlframework's errors name the user's line themselves
        where = ""
    return f"{type(error).__name__}" + (f": {first}" if first else "") + \
        (f" (at {where})" if where else "")
