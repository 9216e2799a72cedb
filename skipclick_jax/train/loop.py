"""The training loop: data → sharded step → metrics, checkpoints, export; resumable and multi-host.

One process per host (`jax.distributed` is initialised from the usual cluster environment variables);
every process feeds its shard of the global batch (`shard_index = jax.process_index()`) and the arrays
are assembled with `jax.make_array_from_process_local_data`. All decisions (logging, checkpoints, the
NaN stop) depend only on the step and on replicated values, so the processes stay in lockstep.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..model import init_params
from .checkpointing import EXPORT_DIR, TrainCheckpointer, export_params
from .config import TrainConfig
from .metrics_writer import MetricsWriter
from .state import abstract_train_state, batch_sharding, create_train_state, make_mesh, make_optimizer
from .step import make_train_step

CONFIG_FILE = "train_config.json"
# Fields that define the data stream and the parameter tree: a resumed run must not change them.
_FIXED_ON_RESUME = ("model", "data", "batch_size", "seed")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving the bad state."""


@dataclass
class TrainResult:
    step: int  # global step reached
    workdir: Path
    export_dir: Path  # `load_checkpoint` directory holding the parameters of `step`
    last_metrics: dict[str, float] = field(default_factory=dict)
    stopped_by_signal: bool = False


def maybe_initialize_distributed() -> None:
    """`jax.distributed.initialize()` when launched as one of several processes; must run before JAX
    touches a device. Explicit: JAX_COORDINATOR_ADDRESS (+ JAX_NUM_PROCESSES, JAX_PROCESS_ID); otherwise
    JAX's cluster auto-detection (SLURM, Open MPI, Kubernetes, TPU pods) when SLURM/MPI report > 1 task."""
    env = os.environ
    explicit = "JAX_COORDINATOR_ADDRESS" in env
    multi = explicit or int(env.get("SLURM_NTASKS", "1")) > 1 or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    if not multi or jax.distributed.is_initialized():
        return
    kwargs = {}
    if explicit and "JAX_NUM_PROCESSES" in env and "JAX_PROCESS_ID" in env:
        kwargs = {"num_processes": int(env["JAX_NUM_PROCESSES"]), "process_id": int(env["JAX_PROCESS_ID"])}
    jax.distributed.initialize(**kwargs)


def initial_params(config: TrainConfig) -> dict[str, Any]:
    """Fresh parameters (the original's init schemes) with the encoder weights of `config.encoder_weights`
    (DINOv2 or DINOv3 hub weights, or any other form `load_encoder` reads)."""
    params = init_params(config.model, config.seed)
    family = config.model.encoder.family
    if not config.encoder_weights:
        example = ("dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth" if family == "dinov3"
                   else "dinov2_vitb14_reg4_pretrain.pth")
        warnings.warn(
            f"no encoder weights given (--encoder-weights): the {family} encoder is RANDOMLY initialised and, "
            "being frozen, stays random — fine for smoke tests, useless for real training. Pass the hub "
            f"checkpoint, e.g. --encoder-weights {example}",
            stacklevel=2,
        )
        return params
    from ..weights import load_encoder

    name = config.model.encoder_name if config.model.encoder_name.startswith(family) else None
    enc_config, enc_params = load_encoder(config.encoder_weights, name=name)
    if enc_config.family != family:
        raise ValueError(f"{config.encoder_weights}: a {enc_config.family} encoder, but the model "
                         f"({config.model.encoder_name}) needs a {family} one")
    if enc_config != config.model.encoder:
        raise ValueError(
            f"{config.encoder_weights}: encoder is {enc_config}, but the model expects {config.model.encoder}"
        )
    expected = jax.tree.map(np.shape, params["encoder"])
    got = jax.tree.map(np.shape, enc_params)
    if jax.tree.structure(expected) != jax.tree.structure(got) or expected != got:
        raise ValueError(f"{config.encoder_weights}: encoder parameter tree does not match the model")
    params["encoder"] = jax.tree.map(lambda x: np.asarray(x, np.float32), enc_params)
    return params


def _check_resume_config(workdir: Path, config: TrainConfig) -> None:
    path = workdir / CONFIG_FILE
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    current = config.to_dict()
    current = json.loads(json.dumps(current))  # tuples → lists, as saved
    fixed = [k for k in _FIXED_ON_RESUME if saved.get(k) != current.get(k)]
    if fixed:
        raise ValueError(
            f"{workdir} holds a run with different {', '.join(fixed)}; resuming it with this config would "
            "change the data stream or the parameters. Use a new --workdir, or the original settings."
        )
    changed = sorted(k for k in current if k not in _FIXED_ON_RESUME and saved.get(k) != current.get(k))
    if changed:
        warnings.warn(f"resuming {workdir} with changed settings: {', '.join(changed)}", stacklevel=3)


class _SignalFlag:
    """SIGTERM/SIGINT → finish the current step, save a checkpoint, return (main thread only).

    Single-process runs only: with several processes JAX's preemption notifier owns SIGTERM and
    `CheckpointManager.reached_preemption` makes all hosts stop at the same step."""

    def __init__(self, enabled: bool = True) -> None:
        self.raised: int | None = None
        self._enabled = enabled
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalFlag:
        if self._enabled and _is_main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.raised = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(
    config: TrainConfig,
    workdir: str | Path,
    *,
    source: Any = None,
    max_steps: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) the run described by `config` in `workdir`.

    Args:
        config: the run; `config.data_source` is opened unless `source` is given.
        workdir: holds checkpoints, exported parameters, metrics.jsonl and tensorboard/; an existing
            checkpoint there is resumed exactly (parameters, optimiser, step, RNG and data position).
        source: a record source (overrides `config.data_source`), e.g. a `CocoLvisSource`.
        max_steps: stop (with a checkpoint) once this global step is reached; the run stays resumable.
        progress: show a progress bar (process 0).

    Raises:
        NonFiniteLossError: the loss became NaN/inf; checkpoints and export hold the last good state.
    """
    from ..data import make_train_dataset

    maybe_initialize_distributed()
    workdir = Path(workdir).absolute()
    is_chief = jax.process_index() == 0
    _check_resume_config(workdir, config)  # every process, so that all of them stop on a mismatch
    if is_chief:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    mesh = make_mesh()
    n_dev, n_proc = mesh.size, jax.process_count()
    if config.batch_size % n_dev:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {n_dev} devices")
    if source is None:
        if not config.data_source:
            raise ValueError("no training data: pass --data KIND:PATH (or set data_source)")
        from .data_source import open_source

        source = open_source(config.data_source)
    dataset = make_train_dataset(
        source, config.data, seed=config.seed, batch_size=config.batch_size // n_proc,
        shard_index=jax.process_index(), shard_count=n_proc, num_workers=config.num_workers,
        num_epochs=config.num_epochs, prefetch_buffer_size=config.prefetch_batches,
    )
    data_iter = iter(dataset)

    tx = make_optimizer(config)
    checkpointer = TrainCheckpointer(workdir, config)
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(abstract_train_state(config, mesh, tx), data_iter)
    else:
        state = create_train_state(config, initial_params(config), mesh, tx)
    step_fn = make_train_step(config, mesh, tx, state)
    start = int(jax.device_get(state.step))
    end = config.total_steps if max_steps is None else min(max_steps, config.total_steps)

    writer = MetricsWriter(workdir, enabled=is_chief, start_step=start)
    export_dir = workdir / EXPORT_DIR
    spe, global_batch = config.steps_per_epoch, config.batch_size
    sharding = batch_sharding(mesh)
    bar = _progress_bar(start, config.total_steps, enabled=progress and is_chief)
    pending: list[tuple[int, dict[str, jax.Array]]] = []
    last_metrics: dict[str, float] = {}
    timer = [time.perf_counter(), 0]  # (start of the interval, images in it; 0 = first step, not timed)

    def flush() -> None:
        """Fetch pending metrics, log them, and stop on a non-finite loss."""
        nonlocal last_metrics
        if not pending:
            return
        rows = []
        for step, values in zip((s for s, _ in pending), jax.device_get([m for _, m in pending]), strict=True):
            rows.append({"step": step, "epoch": (step - 1) // spe, **{k: float(v) for k, v in values.items()}})
        now = time.perf_counter()
        interval = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("step", "epoch")}
        if timer[1]:
            interval["images_per_sec"] = timer[1] / (now - timer[0])
            rows[-1]["images_per_sec"] = interval["images_per_sec"]
        timer[:] = [now, 0]
        writer.write_steps(rows)
        writer.write_summary(rows[-1]["step"], interval)
        last_metrics = {"step": rows[-1]["step"], **interval}
        if bar is not None:
            bar.set_postfix(_postfix(interval), refresh=False)
            bar.update(rows[-1]["step"] - bar.n)
        pending.clear()
        bad = [r for r in rows if not math.isfinite(r["loss"])]
        if bad:
            raise NonFiniteLossError(_nonfinite_message(bad[0], checkpointer, export_dir, config))

    exported = [None]  # step of the parameters in export_dir

    def export(state) -> None:
        metadata = _export_metadata(state, config)
        export_params(export_dir, config.model, state.full_params(), metadata)
        exported[0] = metadata["step"]

    def save(state) -> None:
        flush()  # never checkpoint a state whose loss history is not known to be finite
        checkpointer.save(state, data_iter)
        if config.export_with_checkpoints:
            export(state)
        timer[0] = time.perf_counter()  # images/s measures training, not checkpointing

    stopped_by_signal = False
    try:
        with _SignalFlag(enabled=n_proc == 1) as flag:
            for step in range(start, end):
                local = next(data_iter)
                batch = {k: jax.make_array_from_process_local_data(sharding, local[k]) for k in local}
                state, metrics = step_fn(state, batch)
                done = step + 1
                pending.append((done, metrics))
                timer[1] += global_batch if step > start else 0
                if step == start or done % config.log_every_steps == 0:
                    flush()  # the first step (with compilation) is logged alone and not timed
                stop = _should_stop(flag, checkpointer, done, n_proc)
                if done % config.checkpoint_interval == 0 or done == end or stop:
                    save(state)
                if stop and done < end:
                    stopped_by_signal = True
                    break
            flush()
            final = int(jax.device_get(state.step))
            if final != checkpointer.latest_step():
                save(state)
            if exported[0] != final:  # without per-checkpoint exports, export once at the end
                export(state)
        checkpointer.wait()
    finally:
        checkpointer.close()
        writer.close()
        if bar is not None:
            bar.close()
    return TrainResult(final, workdir, export_dir, last_metrics, stopped_by_signal)


def _should_stop(flag: _SignalFlag, checkpointer: TrainCheckpointer, step: int, n_proc: int) -> bool:
    if n_proc > 1:  # all hosts agree on the step (JAX's preemption sync manager)
        return checkpointer.manager.reached_preemption(step)
    return flag.raised is not None


def _export_metadata(state, config: TrainConfig) -> dict[str, Any]:
    return {"step": int(jax.device_get(state.step)), "train_config": config.name}


def _nonfinite_message(row: dict[str, Any], checkpointer: TrainCheckpointer, export_dir: Path,
                       config: TrainConfig) -> str:
    good = checkpointer.latest_step()
    where = (f"the last good checkpoint is step {good} in {checkpointer.directory}"
             + (f" (parameters exported to {export_dir})" if config.export_with_checkpoints else "")
             if good is not None else "no checkpoint had been written yet")
    return (f"training stopped: the loss is {row['loss']} at step {row['step']} (epoch {row['epoch']}); "
            f"the state after it was not saved and {where}. Rerunning the same command resumes from there "
            "and will meet the same batches; lower learning_rate or check the data first.")


def _postfix(values: dict[str, float]) -> dict[str, str]:
    out = {"loss": f"{values['loss']:.4f}", "iou": f"{values['iou']:.3f}", "lr": f"{values['lr']:.1e}"}
    if "images_per_sec" in values:
        out["img/s"] = f"{values['images_per_sec']:.1f}"
    return out


def _progress_bar(start: int, total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)


def describe(config: TrainConfig) -> str:
    """A short human summary of a run configuration (printed by the CLI)."""
    m = config.model
    return (
        f"{config.name}: {m.encoder_name} (train_encoder={m.train_encoder}), fuse_taps={m.fuse_taps}, "
        f"skips={m.skip_connections}, fusion depth {m.fusion_depth}, {m.image_size}px; batch {config.batch_size}, "
        f"{config.num_epochs} epochs × {config.steps_per_epoch} steps, Adam lr {config.learning_rate} "
        f"(×{config.lr_decay} at epochs {list(config.lr_milestones)}), ≤{config.max_num_next_clicks} extra clicks, "
        f"{config.compute_dtype} compute"
    )
