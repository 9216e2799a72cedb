"""Saving and loading SkipClick weights: an Orbax parameter checkpoint plus a JSON config, written atomically.

Layout of a converted/exported directory::

    <dir>/config.json     {"format": "skipclick-jax", "version": 1, "config": {...SkipClickConfig...}, ...}
    <dir>/params/         Orbax StandardCheckpointer tree of float32 parameters
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from .atomic import atomic_directory
from .config import DinoV2Config, SkipClickConfig
from .convert.torch_io import CheckpointError
from .model.skipclick import SkipClick, param_shapes

FORMAT = "skipclick-jax"
ENCODER_FORMAT = "skipclick-jax-encoder"
VERSION = 1


def _write(out_dir: str | Path, record: dict[str, Any], params: Any, overwrite: bool) -> Path:
    import orbax.checkpoint as ocp

    with atomic_directory(out_dir, overwrite) as tmp:
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(tmp / "params", jax.tree.map(jnp.asarray, params))
            ckptr.wait_until_finished()
        (tmp / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    return Path(out_dir)


def save_params(
    out_dir: str | Path,
    config: SkipClickConfig,
    params: Any,
    *,
    overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `params` (Orbax) and `config` (JSON) to `out_dir`; nothing is left behind on failure."""
    record = {"format": FORMAT, "version": VERSION, "config": config.to_dict(), **(metadata or {})}
    return _write(out_dir, record, params, overwrite)


def save_encoder(
    out_dir: str | Path, config: DinoV2Config, params: Any, *, overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write DINOv2 encoder parameters (e.g. converted hub weights) like `save_params`."""
    record = {"format": ENCODER_FORMAT, "version": VERSION, "config": dataclasses.asdict(config), **(metadata or {})}
    return _write(out_dir, record, params, overwrite)


def _read_record(directory: str | Path, fmt: str) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint config ({e})") from e
    if record.get("format") != fmt:
        raise CheckpointError(f"{path}: a {record.get('format')!r} checkpoint, expected {fmt!r}")
    return record


def read_config(directory: str | Path) -> SkipClickConfig:
    """The `SkipClickConfig` stored in a converted checkpoint directory."""
    return SkipClickConfig.from_dict(_read_record(directory, FORMAT)["config"])


def _restore(directory: Path, target: Any) -> Any:
    import orbax.checkpoint as ocp

    try:
        with ocp.StandardCheckpointer() as ckptr:
            return ckptr.restore(directory.absolute() / "params", target)
    except Exception as e:  # noqa: BLE001 - orbax raises many types for damaged trees
        raise CheckpointError(f"{directory}/params: cannot restore the parameters ({type(e).__name__}: {e})") from e


def load_encoder(path: str | Path, name: str | None = None) -> tuple[DinoV2Config, Any]:
    """DINOv2 encoder weights from any download or checkpoint → `(DinoV2Config, params)`.

    Accepts a hub `.pth` (`dinov2_vitb14_reg4_pretrain.pth`, …), hub- or Hugging-Face-named `.safetensors`,
    a Hugging Face model directory, a `save_encoder` directory, or a full SkipClick checkpoint (its encoder).
    `name` is the hub name (e.g. `dinov2_vitb14_reg`) when the file name does not say it.
    """
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        record = json.loads((path / "config.json").read_text())
        if isinstance(record, dict) and record.get("format") == ENCODER_FORMAT:
            config = DinoV2Config(**record["config"])
            from .convert.dinov2_hub import dinov2_param_shapes

            return config, _restore(path, dinov2_param_shapes(config))
    from .export.load import load_dinov2_weights

    return load_dinov2_weights(path, name=name)


def load_checkpoint(
    path: str | Path, *, config: SkipClickConfig | None = None, dtype: Any = jnp.float32
) -> tuple[SkipClick, Any]:
    """Load SkipClick weights: an original `.pth`, a `.safetensors` in the original key names (`skipclick export`),
    or a directory written by `skipclick convert`/training.

    Returns `(model, params)`; use them as `model.apply({'params': params}, image, prev_mask, points)`.
    `dtype` is the compute dtype of the returned module (parameters stay float32).
    """
    path = Path(path)
    if path.is_dir():
        config = config or read_config(path)
        # Exports of multi-process runs restore as numpy; make them device arrays once, not per jitted call.
        params = jax.tree.map(jnp.asarray, _restore(path, param_shapes(config)))
    elif path.suffix == ".safetensors" and path.exists():
        # Original key names; the exact config is in the metadata (`skipclick export … x.safetensors`).
        from .export.formats import read_skipclick_safetensors

        config, params = read_skipclick_safetensors(path, config)
        params = jax.tree.map(jnp.asarray, params)
    elif path.exists():
        from .convert.skipclick_checkpoint import read_skipclick_pth

        config, params = read_skipclick_pth(path, config)
        params = jax.tree.map(jnp.asarray, params)
    else:
        raise CheckpointError(f"{path}: no such file or directory")
    return SkipClick(config, dtype=dtype), params
