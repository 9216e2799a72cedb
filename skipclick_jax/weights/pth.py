"""PyTorch `.pth` files: original SkipClick checkpoints and DINOv2 hub checkpoints, read and written.

Reading never imports the original `isegm` package nor runs code from the file. The released SkipClick
checkpoint is a full pickle: its `config` holds an instance of `isegm...CrossEntropyLoss` (and a reference
to a function of that module). It is loaded with an unpickler that allows only the handful of globals a
tensor checkpoint needs, turns every `isegm.*` global into an inert stub, and refuses everything else.

Writing produces what `isegm` writes (SPEC 6): `{'state_dict', 'config'}` with the original keys, order,
shapes and float32 tensors, and the `serialize` record of the configuration (`records.original_record`),
so the original's `load_is_model` accepts the file unchanged (`strict=True`). That record holds
`head_params['loss_decode']`, a pickled *instance* of
`isegm.model.modeling.transformer_helper.cross_entropy_loss.CrossEntropyLoss`. isegm is not a dependency:
while pickling, placeholder modules of those names are put into `sys.modules` (and removed afterwards)
with a `CrossEntropyLoss(nn.Module)` whose attributes are those the original constructor gives with its
defaults, so the pickle refers to the real class and the original code restores a real, equal instance.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import pickle
import sys
import threading
import types
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file, check_writable
from ..config import Encoder, SkipClickConfig
from .errors import CheckpointError
from .mapping import encoder_params, encoder_shapes, flax_to_torch, skipclick_params, skipclick_shapes, torch_sources
from .records import hub_name_from_filename, infer_config, infer_encoder, original_record, unrecorded_fields
from .tables.encoders import encoder_entries
from .tables.skipclick import encoder_prefix, skipclick_entries

LOSS_MODULE = "isegm.model.modeling.transformer_helper.cross_entropy_loss"
_pickle_lock = threading.Lock()


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


# --- readers -------------------------------------------------------------------------------------------------
def read_skipclick_pth(
    path: str | Path, config: SkipClickConfig | None = None
) -> tuple[SkipClickConfig, dict[str, Any]]:
    """Read an original SkipClick `.pth`: (config, Flax params as numpy arrays).

    `config` overrides detection (useful for encoders that are not hub models); the weights must still
    match it exactly.
    """
    state, stored = state_dict_of(read_pth(path), path)
    return skipclick_from_state(state, stored, path, config)


def skipclick_from_state(state: dict[str, np.ndarray], stored: Any, path: str | Path,
                         config: SkipClickConfig | None = None) -> tuple[SkipClickConfig, dict[str, Any]]:
    """An original state dict and its stored config record (or None) → (config, params)."""
    if encoder_prefix(state) is None:
        raise CheckpointError(
            f"{path}: no 'feature_extractor.dinov2.*' or 'feature_extractor.dinov3.*' keys — not a SkipClick "
            "checkpoint" + (" (it looks like an encoder hub checkpoint; use it as an encoder)"
                            if "cls_token" in state else "")
        )
    if config is None:
        if stored is None:
            warnings.warn(f"{path}: no stored config; inferring the configuration from the shapes", stacklevel=3)
        config = infer_config(state, stored, path)
    return config, skipclick_params(state, config, path)


def read_encoder_pth(path: str | Path, name: str | None = None) -> tuple[Encoder, dict[str, Any]]:
    """Read a DINOv2 or DINOv3 hub checkpoint: (encoder config, encoder params as numpy arrays).

    The hyper-parameters come from `name` (e.g. `dinov2_vitb14_reg`, `dinov3_vitb16`), else from the file
    name, and are checked against the tensor shapes; a renamed file of unknown size is read off the shapes.
    """
    state, _ = state_dict_of(read_pth(path), path)
    return encoder_from_hub_state(state, path, name)


def encoder_from_hub_state(state: dict[str, np.ndarray], path: str | Path, name: str | None = None
                           ) -> tuple[Encoder, dict[str, Any]]:
    """A hub-named encoder state dict → (config, params); see `read_encoder_pth`."""
    if any(k.startswith("feature_extractor.") for k in state):
        raise CheckpointError(f"{path}: this is a SkipClick checkpoint, not an encoder hub checkpoint")
    config = infer_encoder(state, "", name or hub_name_from_filename(path), Path(path))
    return config, encoder_params(state, config, path)


# --- writers -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def isegm_loss_placeholder() -> Iterator[type]:
    """`CrossEntropyLoss` importable under its isegm name while the block runs (pickling only).

    Uses the real class if isegm is already imported; otherwise installs placeholder modules and
    restores `sys.modules` afterwards, so no isegm module outlives the export.
    """
    torch = require_torch()
    real = sys.modules.get(LOSS_MODULE)
    if real is not None and hasattr(real, "CrossEntropyLoss"):
        yield real.CrossEntropyLoss
        return
    if real is not None:
        raise CheckpointError(f"a module {LOSS_MODULE} is imported but defines no CrossEntropyLoss")
    parts = LOSS_MODULE.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    with _pickle_lock:
        created = [name for name in names if name not in sys.modules]
        mods = {name: sys.modules.get(name) or types.ModuleType(name) for name in names}
        leaf = mods[LOSS_MODULE]

        def cross_entropy(*args: Any, **kwargs: Any) -> Any:  # pickled by reference only
            raise NotImplementedError("placeholder of isegm's cross_entropy")

        class CrossEntropyLoss(torch.nn.Module):
            """Placeholder with the attributes of the original's `CrossEntropyLoss()` (all defaults)."""

            def __init__(self) -> None:
                super().__init__()
                self.use_sigmoid = False
                self.use_mask = False
                self.reduction = "mean"
                self.loss_weight = 1.0
                self.class_weight = None
                self.cls_criterion = cross_entropy

        for obj, name in ((cross_entropy, "cross_entropy"), (CrossEntropyLoss, "CrossEntropyLoss")):
            obj.__module__, obj.__qualname__ = LOSS_MODULE, name
            setattr(leaf, name, obj)
        # Link each new module into its parent (an existing parent gets the attribute only for the duration).
        linked = []
        for parent, child in zip(names[:-1], names[1:], strict=True):
            attr = child.rsplit(".", 1)[1]
            if child in created:
                setattr(mods[parent], attr, mods[child])
                linked.append((mods[parent], attr))
        sys.modules.update({name: mods[name] for name in created})
        try:
            yield CrossEntropyLoss
        finally:
            for name in created:
                sys.modules.pop(name, None)
            for parent_module, attr in linked:
                if hasattr(parent_module, attr):
                    delattr(parent_module, attr)


def _to_torch_state(state: dict[str, np.ndarray]) -> OrderedDict:
    torch = require_torch()
    # from_numpy shares memory (no second copy); arrays straight from device_get are read-only, copy those.
    arrays = ((k, np.ascontiguousarray(v, np.float32)) for k, v in state.items())
    return OrderedDict((k, torch.from_numpy(a if a.flags.writeable else a.copy())) for k, a in arrays)


def save_original_pth(
    path: str | Path, config: SkipClickConfig, params: Any, *, overwrite: bool = False
) -> Path:
    """Write `params` as an original SkipClick checkpoint `{'state_dict', 'config'}` (atomically).

    `torch.save` needs the whole state dict at once, so this holds one host copy of the weights
    (gathered leaf by leaf); use the safetensors writer to stream instead.
    """
    check_writable(path, overwrite)  # before gathering anything
    entries = skipclick_entries(config)
    torch_sources(params, entries, skipclick_shapes(config))  # strict check before any work
    lost = unrecorded_fields(config)
    if lost:
        warnings.warn("the original config record cannot express this configuration exactly; the tensors are "
                      "exact, but load the file back with config= (or export safetensors, which stores the "
                      "configuration): " + "; ".join(lost), stacklevel=2)
    state = _to_torch_state(flax_to_torch(params, entries))
    torch = require_torch()
    with atomic_file(path, overwrite) as (_, f), isegm_loss_placeholder() as loss_cls:
        torch.save({"state_dict": state, "config": original_record(config, loss_decode=loss_cls())}, f)
    return Path(path)


def save_encoder_pth(path: str | Path, config: Encoder, params: Any, *, overwrite: bool = False) -> Path:
    """Write encoder parameters as a hub checkpoint (a plain state dict, like `dinov2_vitb14_reg4_pretrain.pth`
    or `dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth`, buffers included), atomically."""
    check_writable(path, overwrite)
    entries = encoder_entries(config)
    torch_sources(params, entries, encoder_shapes(config))
    state = _to_torch_state(flax_to_torch(params, entries))
    with atomic_file(path, overwrite) as (_, f):
        require_torch().save(state, f)
    return Path(path)


