"""The training loop: data → sharded step → metrics, checkpoints, export; resumable and multi-host.

One process per host (`jax.distributed` is initialised from the usual cluster environment variables, see
`distributed`); every process feeds its shard of the global batch (`shard_index = jax.process_index()`)
and the arrays are assembled with `jax.make_array_from_process_local_data`. All decisions (logging,
checkpoints, evaluation, the NaN stop) depend only on the step and on replicated values, so the
processes stay in lockstep. Files are written by process 0 only (metrics.jsonl, TensorBoard, export/,
best/, the profile); Orbax writes the checkpoint cooperatively (each process its iterator state).

The step is compiled ahead of the first step (`lower(...).compile()`), then the processes meet at a
barrier, so a process that loads the executable from the cache does not wait for the others inside the
first collective. The loop waits for each step's metrics before the next one: this gives the step time
split (waiting for data vs the step on the devices) and lets the watchdog see a stalled step; Grain's
prefetch threads keep loading meanwhile.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..atomic import write_bytes_atomic
from ..model import init_params
from .checkpointing import EXPORT_DIR, TrainCheckpointer, export_params
from .config import TrainConfig
from .distributed import Watchdog, barrier, maybe_initialize_distributed
from .metrics_writer import MetricsWriter
from .state import abstract_train_state, batch_sharding, create_train_state, make_mesh, make_optimizer
from .step import make_train_step
from .throughput import StepTimer, flops_per_image, postfix

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


def host_dataset(config: TrainConfig, source: Any, process_index: int, process_count: int, *,
                 with_index: bool = False) -> Any:
    """This process's shard of the training stream: per global step, `batch_size / process_count`
    consecutive draws of the step's global batch (disjoint across processes, their union the stream of
    a single process; see `skipclick_jax.data.grain_pipeline`). `with_index` adds each sample's global
    draw index (tests)."""
    from ..data import make_train_dataset

    if config.batch_size % process_count:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {process_count} processes")
    return make_train_dataset(
        source, config.data, seed=config.seed, batch_size=config.batch_size // process_count,
        shard_index=process_index, shard_count=process_count, num_workers=config.num_workers,
        num_epochs=config.num_epochs, prefetch_buffer_size=config.prefetch_batches, with_index=with_index,
    )


def parse_profile_steps(text: str) -> tuple[int, int]:
    """`A:B` → (A, B): trace global steps A..B inclusive (1-based, as logged)."""
    first, sep, last = text.partition(":")
    try:
        a, b = int(first), int(last if sep else first)
    except ValueError:
        raise ValueError(f"--profile-steps {text!r}: expected A:B, e.g. 10:12") from None
    if a < 1 or b < a:
        raise ValueError(f"--profile-steps {text!r}: need 1 <= A <= B")
    return a, b


def train(
    config: TrainConfig,
    workdir: str | Path,
    *,
    source: Any = None,
    max_steps: int | None = None,
    progress: bool = True,
    profile_steps: tuple[int, int] | None = None,
    peak_tflops: float | None = None,
) -> TrainResult:
    """Train (or resume) the run described by `config` in `workdir`.

    Args:
        config: the run; `config.data_source` is opened unless `source` is given.
        workdir: holds checkpoints, exported parameters, metrics.jsonl and tensorboard/; an existing
            checkpoint there is resumed exactly (parameters, optimiser, step, RNG and data position), also
            when it was written by a different number of processes.
        source: a record source (overrides `config.data_source`), e.g. a `CocoLvisSource`.
        max_steps: stop (with a checkpoint) once this global step is reached; the run stays resumable.
        progress: show a progress bar (process 0).
        profile_steps: (A, B): process 0 writes a `jax.profiler` trace of global steps A..B to
            <workdir>/profile (TensorBoard's profile plugin or Perfetto open it).
        peak_tflops: peak TFLOP/s of one device; adds `mfu` (model FLOPs utilisation) to the metrics.

    Raises:
        NonFiniteLossError: the loss became NaN/inf; checkpoints and export hold the last good state.
    """
    maybe_initialize_distributed()
    workdir = Path(workdir).absolute()
    is_chief = jax.process_index() == 0
    _check_resume_config(workdir, config)  # every process, so that all of them stop on a mismatch
    if is_chief:
        workdir.mkdir(parents=True, exist_ok=True)
        # Atomic: the other processes read this file at the same moment (`_check_resume_config`); a plain
        # write_text truncates it first, and a reader then sees an empty file.
        write_bytes_atomic(workdir / CONFIG_FILE, (json.dumps(config.to_dict(), indent=2) + "\n").encode())

    mesh = make_mesh()
    n_dev, n_proc = mesh.size, jax.process_count()
    micro = config.batch_size // config.grad_accum_steps
    if micro % n_dev:
        raise ValueError(f"the micro-batch (batch_size {config.batch_size} / grad_accum_steps "
                         f"{config.grad_accum_steps} = {micro}) is not divisible by the {n_dev} devices")
    if source is None:
        if not config.data_source:
            raise ValueError("no training data: pass --data KIND:PATH (or set data_source)")
        from .data_source import open_source

        source = open_source(config.data_source)
    data_iter = iter(host_dataset(config, source, jax.process_index(), n_proc))
    evaluator = None
    if config.eval_every_steps:
        from .evaluation import TrainEvaluator

        evaluator = TrainEvaluator(config, workdir)  # opens the held-out set now: a bad path fails early

    tx = make_optimizer(config)
    checkpointer = TrainCheckpointer(workdir, config)
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(abstract_train_state(config, mesh, tx), data_iter,
                                     num_workers=config.num_workers)
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
    timer = StepTimer()
    flops = flops_per_image(config) if peak_tflops and is_chief else None
    profiler = _Profiler(workdir / "profile", profile_steps, enabled=is_chief)

    def flush() -> None:
        """Fetch pending metrics, log them, and stop on a non-finite loss."""
        nonlocal last_metrics
        if not pending:
            return
        rows = []
        for step, values in zip((s for s, _ in pending), jax.device_get([m for _, m in pending]), strict=True):
            rows.append({"step": step, "epoch": (step - 1) // spe, **{k: float(v) for k, v in values.items()}})
        interval = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("step", "epoch")}
        timing = timer.summary(flops, peak_tflops, n_dev)
        interval.update(timing)
        rows[-1].update(timing)
        timer.reset()
        writer.write_steps(rows)
        writer.write_summary(rows[-1]["step"], interval)
        last_metrics = {"step": rows[-1]["step"], **interval}
        if bar is not None:
            bar.set_postfix(postfix(interval), refresh=False)
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

    def evaluate(state, step: int) -> None:
        row = evaluator.evaluate(state.full_params())
        improved = evaluator.update_best(step, row, config.model, state.full_params())
        writer.write_eval(step, row, improved)
        last_metrics.update({f"eval/{k}": v for k, v in row.items()})

    stopped_by_signal = False
    try:
        # Compile before the first step and line the processes up (see the module docstring).
        first = _global_batch(next(data_iter), sharding) if start < end else None
        if first is not None:
            step_fn = _compiled(step_fn, state, first)
            barrier("skipclick_train_compiled", timeout_s=3600)
        watchdog = Watchdog(config.watchdog_timeout_s if n_proc > 1 else 0)
        with _SignalFlag(enabled=n_proc == 1) as flag, watchdog:
            for step in range(start, end):
                done = step + 1
                t0 = time.perf_counter()
                batch = first if step == start else _global_batch(next(data_iter), sharding)
                t1 = time.perf_counter()
                profiler.before(done)
                with jax.profiler.StepTraceAnnotation("train", step_num=done):
                    state, metrics = step_fn(state, batch)
                    jax.block_until_ready(metrics)
                profiler.after(done)
                watchdog.beat()
                timer.add(t1 - t0, time.perf_counter() - t1, global_batch)
                pending.append((done, metrics))
                if step == start or done % config.log_every_steps == 0:
                    flush()  # the first step is logged alone
                with watchdog.paused():
                    if evaluator is not None and done % config.eval_every_steps == 0:
                        flush()
                        evaluate(state, done)
                    stop = _should_stop(flag, checkpointer, done, n_proc)
                    if done % config.checkpoint_interval == 0 or done == end or stop:
                        save(state)
                if stop and done < end:
                    stopped_by_signal = True
                    break
            with watchdog.paused():
                flush()
                final = int(jax.device_get(state.step))
                if final != checkpointer.latest_step():
                    save(state)
                if exported[0] != final:  # without per-checkpoint exports, export once at the end
                    export(state)
        checkpointer.wait()
    finally:
        profiler.close()
        checkpointer.close()
        writer.close()
        if bar is not None:
            bar.close()
    return TrainResult(final, workdir, export_dir, last_metrics, stopped_by_signal)


def _global_batch(local: dict[str, np.ndarray], sharding: Any) -> dict[str, jax.Array]:
    """This process's rows → global arrays sharded over all devices of all processes."""
    return {k: jax.make_array_from_process_local_data(sharding, local[k]) for k in local}


def _compiled(step_fn: Any, state: Any, batch: dict[str, jax.Array]) -> Any:
    """The step compiled ahead of time for these shapes (a plain function, e.g. a test's wrapper, as is)."""
    lower = getattr(step_fn, "lower", None)
    return lower(state, batch).compile() if lower is not None else step_fn


class _Profiler:
    """A `jax.profiler` trace of global steps A..B (process 0), written to `directory`."""

    def __init__(self, directory: Path, steps: tuple[int, int] | None, enabled: bool) -> None:
        self.directory, self.steps, self.enabled = directory, steps, enabled and steps is not None
        self.active = False

    def before(self, step: int) -> None:
        if self.enabled and not self.active and step == self.steps[0]:
            jax.profiler.start_trace(str(self.directory))
            self.active = True

    def after(self, step: int) -> None:
        if self.active and step >= self.steps[1]:
            self.close()

    def close(self) -> None:
        if self.active:
            jax.profiler.stop_trace()
            self.active = False


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
        + (f", {config.grad_accum_steps} accumulated micro-batches of {config.batch_size // config.grad_accum_steps}"
           if config.grad_accum_steps > 1 else "")
        + (f", NoC evaluation every {config.eval_every_steps} steps on {config.eval_data}"
           if config.eval_every_steps else "")
    )
