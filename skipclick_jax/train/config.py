"""Training configuration: one frozen dataclass whose defaults are the paper's recipe (SPEC 5).

A run is fully described by a `TrainConfig` (model + data pipeline + optimiser + loop settings). Presets
mirror the model presets of `skipclick_jax.config`; the files in the top-level `configs/` folder return
the same objects and are what `skipclick train --config` reads. `--set key=value` overrides go through
`apply_overrides`, which rebuilds the frozen dataclasses (so their validation runs again).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import PRESETS as MODEL_PRESETS
from ..config import SkipClickConfig
from ..data.config import AugmentConfig, TrainDataConfig


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults: the released SkipClick run (SPEC 5.1)."""

    name: str = "skipclick_vitb14_448"
    model: SkipClickConfig = field(default_factory=SkipClickConfig)
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    # Where the samples come from: "cocolvis:ROOT", "folder:ROOT", "coco-json:FILE[,IMAGE_DIR]", "tfds:DIR".
    data_source: str = ""
    # Encoder weights: a DINOv2 / DINOv3 hub .pth, safetensors, HF or `skipclick convert` directory
    # ("" = random, warned).
    encoder_weights: str = ""

    # Optimisation (Adam, no weight decay; MultiStepLR stepped per epoch).
    batch_size: int = 32  # global, per optimiser step; split over devices and hosts
    # Gradient accumulation: the batch of a step is cut into this many micro-batches whose gradients are
    # averaged inside the jitted step (same data stream, same update as one step on the whole batch).
    grad_accum_steps: int = 1
    num_epochs: int = 55
    learning_rate: float = 5e-5
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    lr_milestones: tuple[int, ...] = (50, 55)  # epochs; 55 is never reached with 55 epochs (SPEC trap 33)
    lr_decay: float = 0.1

    # Iterative training (SPEC 5.5) and loss (SPEC 5.6).
    max_num_next_clicks: int = 3  # n_iter ~ U{0..3}, one value per batch
    loss_alpha: float = 0.5
    loss_gamma: float = 2.0
    # Distance transform of the click rule: "relax" (accelerators), "raster" (CPU) or "auto"; same result.
    dt_method: Literal["auto", "relax", "raster"] = "auto"

    # DINOv3 encoders: the original's trainer runs the loss pass with the (frozen) encoder in train mode, so
    # its RoPE multiplies the coordinates by a random factor per block (log-uniform in [1/2, 2]) there, while
    # the simulated clicks see the plain encoder. True reproduces that (two encoder passes per step).
    dinov3_train_rope_rescale: bool = True

    seed: int = 0
    compute_dtype: Literal["float32", "bfloat16"] = "float32"  # parameters and optimiser stay float32

    # Loop: checkpoints (0 = once per epoch, as the original's last_checkpoint.pth), logs, data workers.
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 3
    keep_period_steps: int = 0  # additionally keep every checkpoint whose step is a multiple (0 = off)
    # Refresh <workdir>/export (load_checkpoint format) at each checkpoint; otherwise only when the run ends.
    export_with_checkpoints: bool = True
    log_every_steps: int = 25
    # A process whose step makes no progress for this long exits with a clear message (a peer died and the
    # collectives would wait forever); compilation, checkpoints and evaluation are not counted. 0 = off.
    watchdog_timeout_s: float = 600.0

    # Evaluation during training: every `eval_every_steps` (0 = off) the NoC protocol (SPEC 3) on
    # `eval_data` (any `skipclick evaluate --datasets` entry: folder:PATH, coco-json:PATH, GrabCut, ...;
    # names resolve below `eval_data_root`), at the training size, on at most `eval_max_samples` objects
    # (0 = all). The best parameters by `best_metric` (lower is better for NoC, higher for mIoU@k) are kept
    # in <workdir>/best beside <workdir>/export.
    eval_every_steps: int = 0
    eval_data: str = ""
    eval_data_root: str = ""
    eval_max_clicks: int = 20
    eval_max_samples: int = 0
    eval_batch: int = 4
    eval_flip: bool = True
    best_metric: str = "NoC@90"
    num_workers: int = 4  # Grain worker processes per host (0 = in-process)
    prefetch_batches: int = 2

    def __post_init__(self) -> None:
        size = self.model.image_size
        if tuple(self.data.augment.crop_size) != (size, size):
            raise ValueError(
                f"data.augment.crop_size {tuple(self.data.augment.crop_size)} must equal the model's training size "
                f"({size}, {size}); set both (e.g. --set model.image_size=S --set data.augment.crop_size=S,S)"
            )
        if self.batch_size < 1 or self.num_epochs < 1:
            raise ValueError("batch_size and num_epochs must be positive")
        if self.steps_per_epoch < 1:
            raise ValueError(f"data.epoch_len {self.data.epoch_len} is smaller than batch_size {self.batch_size}")
        if self.max_num_next_clicks < 0 or self.max_num_next_clicks >= self.data.sampler.max_num_points:
            raise ValueError("max_num_next_clicks must lie in [0, data.sampler.max_num_points)")
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"compute_dtype must be 'float32' or 'bfloat16', not {self.compute_dtype!r}")
        if self.dt_method not in ("auto", "relax", "raster"):
            raise ValueError(f"dt_method must be 'auto', 'relax' or 'raster', not {self.dt_method!r}")
        if self.keep_checkpoints < 1 or min(self.checkpoint_every_steps, self.keep_period_steps) < 0:
            raise ValueError("keep_checkpoints must be >= 1 and checkpoint cadences >= 0")
        if self.log_every_steps < 1:
            raise ValueError("log_every_steps must be >= 1")
        if self.grad_accum_steps < 1 or self.batch_size % self.grad_accum_steps:
            raise ValueError(f"grad_accum_steps {self.grad_accum_steps} must be >= 1 and divide batch_size "
                             f"{self.batch_size} (batch_size is the batch of one optimiser step)")
        if self.watchdog_timeout_s < 0:
            raise ValueError("watchdog_timeout_s must be >= 0 (0 = off)")
        if self.eval_every_steps < 0 or self.eval_max_samples < 0 or self.eval_max_clicks < 1 or self.eval_batch < 1:
            raise ValueError("eval_every_steps and eval_max_samples must be >= 0, eval_max_clicks and eval_batch >= 1")
        if self.eval_every_steps and not self.eval_data:
            raise ValueError("eval_every_steps is set but eval_data is empty (e.g. --set eval_data=folder:PATH)")
        if self.best_metric not in BEST_METRICS:
            raise ValueError(f"best_metric must be one of {', '.join(BEST_METRICS)}, not {self.best_metric!r}")

    # --- derived quantities -------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        """Global steps per epoch: epoch_len // batch_size (937 for 30000 / 32; the rest is dropped)."""
        return self.data.epoch_len // self.batch_size

    @property
    def total_steps(self) -> int:
        return self.num_epochs * self.steps_per_epoch

    @property
    def checkpoint_interval(self) -> int:
        return self.checkpoint_every_steps or self.steps_per_epoch

    # --- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d)


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a (nested) frozen dataclass from `dataclasses.asdict` output (lists back to tuples)."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    kwargs = {}
    for name, value in d.items():
        hint = hints[name]
        if hint is SkipClickConfig and isinstance(value, dict):
            value = SkipClickConfig.from_dict(value)  # its encoder is one of two dataclasses
        elif dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = _from_dict(hint, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


#: Metrics `best_metric` may name: NoC (fewer clicks is better) and mIoU after k clicks (higher is better).
BEST_METRICS = ("NoC@80", "NoC@85", "NoC@90", "mIoU@1", "mIoU@3", "mIoU@5")


def metric_is_better(name: str, new: float, old: float | None) -> bool:
    """Whether `new` beats `old` for metric `name` (NoC: lower; mIoU@k: higher)."""
    if old is None:
        return True
    return new < old if name.startswith("NoC") else new > old


# --- presets ----------------------------------------------------------------------------------


def _paper(name: str) -> TrainConfig:
    """The paper's recipe (identical for every configuration of the original) around a model preset."""
    return TrainConfig(name=name, model=MODEL_PRESETS[name]())


def tiny(model: str = "tiny") -> TrainConfig:
    """A CPU-sized run with every code path of the full one: tiny model, 112 crops, small epochs."""
    return TrainConfig(
        name=model,
        model=MODEL_PRESETS[model](),
        data=TrainDataConfig(augment=AugmentConfig(crop_size=(112, 112)), min_object_area=100, epoch_len=64),
        batch_size=8,
        num_epochs=4,
        learning_rate=1e-3,
        lr_milestones=(3,),
        checkpoint_every_steps=4,
        log_every_steps=1,
        num_workers=0,
    )


PRESETS: dict[str, Any] = {name: (lambda n=name: _paper(n)) for name in MODEL_PRESETS if not name.startswith("tiny")}
PRESETS.update({name: (lambda n=name: tiny(n)) for name in MODEL_PRESETS if name.startswith("tiny")})


def preset(name: str) -> TrainConfig:
    """A named training preset (the model preset of the same name with the paper's recipe)."""
    if name not in PRESETS:
        raise KeyError(f"unknown training preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()


def load_config(spec: str | Path) -> TrainConfig:
    """A config file (`configs/<name>.py` defining `get_config()`) or a preset name."""
    path = Path(spec)
    if path.suffix == ".py":
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        module_spec = importlib.util.spec_from_file_location(f"skipclick_config_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ValueError(f"{path} does not define get_config()")
        config = module.get_config()
        if not isinstance(config, TrainConfig):
            raise ValueError(f"{path}: get_config() returned {type(config).__name__}, not TrainConfig")
        return config
    return preset(str(spec))


# --- command-line overrides ----------------------------------------------------------------------


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """Apply `key=value` overrides with dotted keys (`batch_size=8`, `model.fusion_depth=2`,
    `data.augment.crop_size=112,112`) to a frozen dataclass tree. Values are parsed by the type of the
    field: bools accept true/false/1/0, tuples a Python literal or comma-separated items, optional fields
    `none`. All overrides are applied before the dataclasses validate, so dependent fields can change
    together."""
    tree = dataclasses.asdict(config)
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value")
        _set(type(config), tree, key.split("."), value.strip(), key)
    return _from_dict(type(config), tree)


def _set(cls: type, tree: dict[str, Any], path: list[str], value: str, full_key: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    name = path[0]
    if name not in names:
        raise ValueError(f"unknown config key {full_key!r} ({cls.__name__} fields: {', '.join(names)})")
    hint = typing.get_type_hints(cls)[name]
    if len(path) > 1:
        if not dataclasses.is_dataclass(hint):
            raise ValueError(f"cannot override {full_key!r}: {cls.__name__}.{name} has no fields")
        _set(hint, tree[name], path[1:], value, full_key)
    elif dataclasses.is_dataclass(hint):
        raise ValueError(f"{full_key!r} is a group of settings; override its fields ({full_key}.<field>=...)")
    else:
        tree[name] = _parse(value, hint, tree[name], full_key)


def _parse(text: str, hint: Any, current: Any, key: str) -> Any:
    is_union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    options = typing.get_args(hint) if is_union else (hint,)
    if type(None) in options and text.lower() in ("none", "null"):
        return None
    kinds = [o for o in options if o is not type(None)]
    kind = kinds[0] if kinds else type(current)
    origin = typing.get_origin(kind) or kind
    try:
        if origin is Literal:
            if text not in typing.get_args(kind):
                raise ValueError(f"expected one of {typing.get_args(kind)}")
            return text
        if origin is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if origin in (int, float, str):
            return origin(text)
        if origin is tuple:
            parsed = ast.literal_eval(text) if text[:1] in "([" else ast.literal_eval(f"({text},)")
            return tuple(parsed)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"cannot parse {key}={text!r} as {kind}: {e}") from e
    raise ValueError(f"cannot override {key!r} of type {kind}")
