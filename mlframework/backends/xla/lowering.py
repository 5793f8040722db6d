"""Hand-written XLA lowering helpers used by the generated `gen_lowering.py`."""
from __future__ import annotations

import jax
import numpy as np
from jax import lax
from jax._src.lax.windowed_reductions import \
    _select_and_scatter_add as _xla_select_and_scatter_add

from mlframework.core.dtypes import DType, finfo_max, finfo_min


def _scalar(value, dtype):
    return np.array(value, dtype=dtype)


def _abs(x):
    return x if np.dtype(x.dtype).kind == "u" else lax.abs(x)


def _log2(x):
    return lax.div(lax.log(x), lax.log(_scalar(2, x.dtype)))  # XLA has no log2 (as jnp.log2)


def _is_inf(x):
    return lax.eq(lax.abs(x), _scalar(np.inf, x.dtype))


def _lowest(dtype):
    return finfo_min(_as_dtype(dtype))


def _highest(dtype):
    return finfo_max(_as_dtype(dtype))


def _as_dtype(np_dtype) -> DType:
    from mlframework.core.dtypes import as_dtype
    return as_dtype(np_dtype)


def _linalg(fn, *operands, **options):
    """fn over the operands, float16/bfloat16 computed in float32 and rounded once."""
    dtype = operands[0].dtype
    if np.dtype(dtype).itemsize != 2:
        return fn(*operands, **options)
    wide = [lax.convert_element_type(x, np.float32) for x in operands]
    return lax.convert_element_type(fn(*wide, **options), dtype)


def _numpy_dtype(dtype: DType | None):
    return None if dtype is None else dtype.numpy


def _convert(x, dtype: DType):
    if x.dtype == np.bool_ or dtype is not DType.BOOL:
        return lax.convert_element_type(x, dtype.numpy)
    return lax.ne(x, lax.full_like(x, 0))


def _reduce(x, init, op, axes):
    # float16/bfloat16 sums and products accumulate in float32 and round once, as
    # jax.numpy.sum does (lax.reduce would round after every addition, in XLA's order).
    if op in (lax.add, lax.mul) and jax.numpy.issubdtype(x.dtype, jax.numpy.floating) \
            and np.dtype(x.dtype).itemsize == 2:
        wide = lax.reduce(lax.convert_element_type(x, np.float32), np.float32(init), op,
                          tuple(axes))
        return lax.convert_element_type(wide, x.dtype)
    return lax.reduce(x, np.array(init, x.dtype), op, tuple(axes))


def _reduce_window(x, init, op, window, strides, padding, base_dilation, window_dilation):
    return lax.reduce_window(x, np.array(init, x.dtype), op, window, strides, padding,
                             base_dilation, window_dilation)


def _select_and_scatter_add(source, x, window, strides, padding):
    # XLA's SelectAndScatter with a >= selector (first maximum wins). jax has no
    # public wrapper; differentiating reduce_window would reject integer dtypes.
    return _xla_select_and_scatter_add(source, x, lax.ge_p, tuple(window), tuple(strides),
                                       tuple(padding))


def _gather(x, indices, offset_dims, collapsed_slice_dims, start_index_map, slice_sizes):
    dnums = lax.GatherDimensionNumbers(offset_dims=offset_dims,
                                       collapsed_slice_dims=collapsed_slice_dims,
                                       start_index_map=start_index_map)
    return lax.gather(x, indices, dnums, slice_sizes, mode=lax.GatherScatterMode.CLIP)


def _scatter(scatter_fn, x, indices, updates, update_window_dims, inserted_window_dims,
             scatter_dims_to_operand_dims, **options):
    dnums = lax.ScatterDimensionNumbers(
        update_window_dims=update_window_dims, inserted_window_dims=inserted_window_dims,
        scatter_dims_to_operand_dims=scatter_dims_to_operand_dims)
    return scatter_fn(x, indices, updates, dnums, mode=lax.GatherScatterMode.FILL_OR_DROP,
                      **options)


def _sort(x, axis, descending):
    out = lax.sort(x, dimension=axis, is_stable=True)
    return lax.rev(out, (axis,)) if descending else out


def _total_order_key(x):
    """Float x as integers ordered as XLA's total order (-NaN first, -0.0 before +0.0)."""
    bits = lax.bitcast_convert_type(x, np.dtype(f"int{8 * np.dtype(x.dtype).itemsize}"))
    magnitude = lax.bitwise_and(bits, np.array(np.iinfo(bits.dtype).max, bits.dtype))
    return lax.select(bits < 0, lax.neg(magnitude) - np.array(1, bits.dtype), bits)


def _argsort(x, axis, descending, index_dtype, total_order):
    n = x.shape[axis]
    if total_order and jax.numpy.issubdtype(x.dtype, jax.numpy.floating):
        x = _total_order_key(x)
    if descending:
        x = lax.rev(x, (axis,))
    iota = lax.broadcasted_iota(index_dtype.numpy, x.shape, axis)
    _, idx = lax.sort((x, iota), dimension=axis, is_stable=True, num_keys=1)
    if descending:
        idx = lax.rev(np.array(n - 1, idx.dtype) - idx, (axis,))
    return idx


def _rng_bits(key, shape):
    typed_key = jax.random.wrap_key_data(key, impl="threefry2x32")
    return jax.random.bits(typed_key, tuple(shape), dtype=np.uint32)


# Control flow: the interpreter hands the sub-graphs over as jax functions of their
# parameters, returning tuples.

def _cond(index, operands, branches):
    if np.dtype(index.dtype) == np.bool_:
        return lax.cond(index, branches[1], branches[0], *operands)
    return lax.switch(index, branches, *operands)


def _while_loop(operands, cond, body, num_carry):
    captured = tuple(operands[num_carry:])
    return lax.while_loop(lambda carry: cond(*carry, *captured)[0],
                          lambda carry: body(*carry, *captured), tuple(operands[:num_carry]))


def _scan(operands, body, length, reverse, num_carry, num_xs):
    carry, xs = tuple(operands[:num_carry]), tuple(operands[num_carry:num_carry + num_xs])
    captured = tuple(operands[num_carry + num_xs:])

    def one(carry, x):
        out = body(*carry, *x, *captured)
        return out[:num_carry], out[num_carry:]

    carry, ys = lax.scan(one, carry, xs, length=length, reverse=reverse)
    return (*carry, *ys)
