"""Reading PyTorch `.pth` files safely, without the original `isegm` package.

The released SkipClick checkpoint is a full pickle: its `config` holds an instance of
`isegm...CrossEntropyLoss` (and a reference to a function of that module). We load it with an
unpickler that allows only the handful of globals a tensor checkpoint needs, turns every `isegm.*`
global into an inert stub, and refuses everything else — so no code from the file ever runs.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import types
from pathlib import Path
from typing import Any

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong with it."""


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "object"),
    ("copyreg", "_reconstructor"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}
_TORCH_DTYPES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"}


class _Stub:
    """Stands in for any `isegm` object: remembers its arguments and state, does nothing."""

    _qualified_name = "isegm.<stub>"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stub of {self._qualified_name}>"


def _stub_class(module: str, name: str) -> type:
    return types.new_class(name, (_Stub,), exec_body=lambda ns: ns.update(_qualified_name=f"{module}.{name}"))


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles (torch's default) name Python-2 modules, e.g. `__builtin__.set`.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "isegm" or module.startswith("isegm."):
            return _stub_class(module, name)
        if (module, name) in _ALLOWED_GLOBALS or (module == "torch" and name in _TORCH_DTYPES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (not a tensor checkpoint type)")


# torch.load accepts a module-like object providing `Unpickler` and `load`.
_restricted_pickle = types.SimpleNamespace(
    Unpickler=_RestrictedUnpickler,
    load=lambda f, **kw: _RestrictedUnpickler(f, **kw).load(),
    __name__="skipclick_restricted_pickle",
)


def require_torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "reading .pth files needs PyTorch: pip install 'skipclick-jax[torch]' (torch==2.13.0)"
        ) from e
    return torch


def read_pth(path: str | Path) -> Any:
    """Load a `.pth` file into plain Python objects, with tensors as float32/int numpy arrays."""
    torch = require_torch()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", pickle_module=_restricted_pickle, weights_only=False)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: not a loadable checkpoint: {e}") from e
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt / foreign files
        raise CheckpointError(f"{path}: not a PyTorch checkpoint or corrupt ({type(e).__name__}: {e})") from e

    def to_numpy(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            x = x.detach()
            if x.is_floating_point() and x.dtype != torch.float32:
                x = x.float()  # half / bfloat16 → float32 is exact
            return x.numpy().copy()
        if isinstance(x, dict):
            return type(x)((k, to_numpy(v)) for k, v in x.items()) if not isinstance(x, _Stub) else x
        if isinstance(x, (list, tuple)):
            return type(x)(to_numpy(v) for v in x)
        return x

    return to_numpy(obj)


def state_dict_of(obj: Any, path: str | Path) -> tuple[dict[str, np.ndarray], dict | None]:
    """Split a loaded `.pth` into (state dict, stored config or None); accepts bare state dicts too."""
    if isinstance(obj, dict) and "state_dict" in obj:
        state, config = obj["state_dict"], obj.get("config")
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        state, config = obj["model"], None
    else:
        state, config = obj, None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: no state dict found (top-level type {type(obj).__name__})")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise CheckpointError(f"{path}: state dict entries that are not tensors: {bad[:10]}")
    return dict(state), config
