"""The "xla" backend: graphs lowered to jax.lax and JIT-compiled by XLA."""
from mlframework.backends.xla.backend import XlaBackend


def create() -> XlaBackend:
    return XlaBackend()


__all__ = ["XlaBackend", "create"]
