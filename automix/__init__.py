"""automix: automatic multitrack mixing on a differentiable mixing console."""

from automix.kernel_cache import ensure_writable_cache

__version__ = "0.1.0"

# Before any module imports numba: a read-only install must still find somewhere to cache kernels.
ensure_writable_cache()
