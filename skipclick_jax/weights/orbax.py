"""The project's own checkpoint directories: an Orbax parameter tree plus a JSON config, written atomically.

Layout of a converted / exported / trained directory::

    <dir>/config.json     {"format": "skipclick-jax", "version": 1, "config": {...SkipClickConfig...}, ...}
    <dir>/params/         Orbax StandardCheckpointer tree of float32 parameters

Encoder directories (`save_encoder`) have format "skipclick-jax-encoder" and a `DinoV2Config` / `DinoV3Config`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..atomic import atomic_directory
from ..config import Encoder, SkipClickConfig, encoder_from_dict
from .errors import CheckpointError
from .mapping import encoder_shapes, skipclick_shapes

FORMAT = "skipclick-jax"
ENCODER_FORMAT = "skipclick-jax-encoder"
VERSION = 1


def _write(out_dir: str | Path, record: dict[str, Any], params: Any, overwrite: bool) -> Path:
    import orbax.checkpoint as ocp

    # Written by the calling process alone: a checkpointer restricted to it involves no cross-host barrier,
    # so process 0 of a multi-process run can export while the others go on. Orbax refuses process-local
    # jax.Arrays in a multi-process run, so there the host (numpy) copies are written instead.
    only_me = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                                 active_processes={jax.process_index()})
    arrays = jax.tree.map(np.asarray if jax.process_count() > 1 else jnp.asarray, params)
    with atomic_directory(out_dir, overwrite) as tmp:
        with ocp.StandardCheckpointer(multiprocessing_options=only_me) as ckptr:
            ckptr.save(tmp / "params", arrays)
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
    out_dir: str | Path, config: Encoder, params: Any, *, overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write encoder parameters (e.g. converted hub weights) like `save_params`."""
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


def read_record(directory: str | Path) -> dict[str, Any] | None:
    """The config.json of a directory (None if absent); a broken file is a CheckpointError."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{Path(directory)}: not a checkpoint directory (cannot read config.json: {e})") from e
    return record if isinstance(record, dict) else {}


def _restore(directory: Path, target: Any) -> Any:
    import orbax.checkpoint as ocp

    try:
        with ocp.StandardCheckpointer() as ckptr:
            return ckptr.restore(directory.absolute() / "params", target)
    except Exception as e:  # noqa: BLE001 - orbax raises many types for damaged trees
        raise CheckpointError(f"{directory}/params: cannot restore the parameters ({type(e).__name__}: {e})") from e


def read_params(directory: str | Path, config: SkipClickConfig | None = None) -> tuple[SkipClickConfig, Any]:
    """A `save_params` directory → (config, parameters on the default device)."""
    directory = Path(directory)
    config = config or read_config(directory)
    # Exports of multi-process runs restore as numpy; make them device arrays once, not per jitted call.
    return config, jax.tree.map(jnp.asarray, _restore(directory, skipclick_shapes(config)))


def read_encoder(directory: str | Path) -> tuple[Encoder, Any]:
    """A `save_encoder` directory → (encoder config, encoder parameters)."""
    directory = Path(directory)
    config = encoder_from_dict(_read_record(directory, ENCODER_FORMAT)["config"])
    return config, _restore(directory, encoder_shapes(config))
