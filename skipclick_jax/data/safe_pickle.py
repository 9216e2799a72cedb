"""A restricted unpickler for the dataset's own pickles (``hannotation.pickle``, ``masks/<id>.pickle``).

Pickles can execute arbitrary code through the globals they reference, and these files come from a
downloaded archive, so they are treated as untrusted data. Only plain containers and scalars (which pickle
encodes without naming any global) and the few numpy constructors needed to rebuild a plain ndarray are
allowed. The RITM mask pickles do need numpy: their "encoded layers" are the 1-D uint8 arrays that
``cv2.imencode`` returns, pickled as ndarrays.
"""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Any

# (module, name) pairs that may be looked up. numpy 1.x pickles say ``numpy.core``; numpy 2 moved it to
# ``numpy._core`` and warns when the old path is imported, so old paths are remapped below.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1"); set/frozenset go through builtins.
    ("_codecs", "encode"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
}
# Protocol < 3 pickles name builtins the Python 2 way.
_RENAMED_MODULES = {
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
    "__builtin__": "builtins",
}


class UnsafePickleError(pickle.UnpicklingError):
    """Raised when a pickle references a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, origin: str):
        super().__init__(file)
        self._origin = origin

    def find_class(self, module: str, name: str) -> Any:
        module = _RENAMED_MODULES.get(module, module)
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self._origin}: refusing to load global '{module}.{name}'; dataset pickles may only "
                "contain dicts, lists, tuples, strings, bytes, numbers, None and plain numpy arrays")
        return getattr(importlib.import_module(module), name)


def safe_loads(data: bytes, origin: str = "<bytes>") -> Any:
    """Unpickles ``data`` allowing only builtin containers/scalars and plain numpy arrays."""
    return _RestrictedUnpickler(io.BytesIO(data), origin).load()


def safe_load(path: str | Path) -> Any:
    """Unpickles the file at ``path`` with :func:`safe_loads`."""
    path = Path(path)
    return safe_loads(path.read_bytes(), str(path))
