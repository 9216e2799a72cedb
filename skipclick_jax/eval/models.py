"""The model under evaluation: weights from a checkpoint or random ones, and one compiled engine per size.

``load_eval_model("weights.pth")`` reads any checkpoint :func:`~skipclick_jax.weights.load_checkpoint`
reads; ``load_eval_model("random:tiny:3")`` builds random weights of a preset (``random:<preset>[:<seed>]``),
for smoke tests and benchmarks — the NoC numbers of such a model are meaningless, and
:attr:`EvalModel.is_random` says so.

The last loaded model is kept in memory, so calling the evaluator several times in one process (tests,
notebooks) reuses the weights and the compiled click steps instead of compiling them again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RANDOM_PREFIX = "random:"
DEFAULT_RANDOM_PRESET = "skipclick_vitb14_448"


@dataclass
class EvalModel:
    """A model with its parameters and the compiled engines built for it so far.

    Attributes:
        model: the ``SkipClick`` module (its ``dtype`` is the compute dtype).
        params: its parameters.
        description: one line naming where the weights come from.
        is_random: True for random weights (results are meaningless).
    """

    model: Any
    params: Any
    description: str
    is_random: bool = False
    _engines: dict[tuple[int, bool], Any] = field(default_factory=dict, repr=False)

    def engine(self, size: int, flip: bool = True) -> Any:
        """The (cached) ``ClickEngine`` for network size ``size`` × ``size``."""
        from ..inference import ClickEngine

        key = (int(size), bool(flip))
        if key not in self._engines:
            self._engines[key] = ClickEngine(self.model, self.params, int(size), flip=bool(flip))
        return self._engines[key]


def parse_random_spec(spec: str) -> tuple[str, int]:
    """``random:<preset>[:<seed>]`` → (preset, seed); ``random:`` alone means the full ViT-B/14 model, seed 0."""
    rest = spec[len(RANDOM_PREFIX):]
    name, _, seed = rest.partition(":")
    name = name or DEFAULT_RANDOM_PRESET
    try:
        return name, int(seed) if seed else 0
    except ValueError:
        raise ValueError(f"invalid random checkpoint {spec!r}: use random:<preset>[:<seed>], "
                         "e.g. random:tiny:0") from None


_LAST: tuple[tuple[Any, ...], EvalModel] | None = None


def _cache_key(spec: str, dtype: str) -> tuple[Any, ...]:
    if spec.startswith(RANDOM_PREFIX):
        return (spec, dtype)
    path = Path(spec).expanduser().absolute()
    try:
        st = os.stat(path)
        stamp: tuple[Any, ...] = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = ()
    return (str(path), *stamp, dtype)


def load_eval_model(spec: str, dtype: str = "float32") -> EvalModel:
    """Load the weights named by ``spec`` (a checkpoint path or ``random:<preset>[:<seed>]``).

    Args:
        spec: checkpoint file/directory, or ``random:<preset>[:<seed>]`` (presets of ``skipclick_jax.config``).
        dtype: compute dtype, ``"float32"`` (the protocol's) or ``"bfloat16"``.
    """
    global _LAST
    import jax.numpy as jnp

    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16, got {dtype!r}")
    key = _cache_key(spec, dtype)
    if _LAST is not None and _LAST[0] == key:
        return _LAST[1]
    if spec.startswith(RANDOM_PREFIX):
        from ..config import preset
        from ..model import SkipClick, init_params

        name, seed = parse_random_spec(spec)
        try:
            config = preset(name)
        except KeyError as e:
            raise ValueError(str(e.args[0])) from None
        result = EvalModel(SkipClick(config, dtype=jnp.dtype(dtype)), init_params(config, seed=seed),
                           f"RANDOM weights (preset {name}, seed {seed})", is_random=True)
    else:
        from ..weights import load_checkpoint

        model, params = load_checkpoint(spec, dtype=jnp.dtype(dtype))
        result = EvalModel(model, params, f"weights from {spec}")
    _LAST = (key, result)
    return result
