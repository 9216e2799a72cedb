"""SkipClick in PyTorch (optional: `pip install 'skipclick-jax[torch]'`).

`TorchSkipClick` runs the same model as the Flax one on PyTorch, with the original checkpoint's
state-dict keys: the baseline of `skipclick bench --compare-torch` (with the original's per-click
semantics, `set_image` / `apply_click`) and a plain PyTorch model for users of Flax-trained weights.
"""

from __future__ import annotations

from typing import Any

from ..config import SkipClickConfig
from ..weights.pth import require_torch


def torch_model(config: SkipClickConfig, params: Any) -> Any:
    """A `TorchSkipClick` (eval mode, float32, CPU) holding `params` (a Flax parameter tree of `config`)."""
    torch = require_torch()
    import numpy as np

    from ..weights.mapping import flax_to_torch
    from ..weights.tables.skipclick import skipclick_entries
    from .skipclick import TorchSkipClick

    model = TorchSkipClick(config)
    state = {k: torch.from_numpy(np.array(v)) for k, v in flax_to_torch(params, skipclick_entries(config)).items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def __getattr__(name: str) -> Any:  # `TorchSkipClick` without importing torch until it is asked for
    if name == "TorchSkipClick":
        require_torch()
        from .skipclick import TorchSkipClick

        return TorchSkipClick
    raise AttributeError(name)


__all__ = ["TorchSkipClick", "torch_model"]
