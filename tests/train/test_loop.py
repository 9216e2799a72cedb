"""The training loop end to end: CLI, export + load_checkpoint, kill-and-resume, NaN stop, signals, logs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skipclick_jax import load_checkpoint
from skipclick_jax.train import command, loop
from skipclick_jax.train.checkpointing import TrainCheckpointer
from skipclick_jax.train.config import preset
from skipclick_jax.train.state import abstract_train_state, make_mesh, make_optimizer

CONFIG = preset("tiny")  # same compiled step as test_step.py (shared through the compilation cache)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="skipclick")
    command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def _losses(workdir: Path) -> dict[int, float]:
    """step → loss from metrics.jsonl; a step logged twice (killed, then resumed) keeps its last value."""
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def _tensorboard_scalars(workdir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag → [(step, value)] as TensorBoard shows it (its own reader, which applies restart purges)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(workdir / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_cli_trains_exports_and_the_export_loads(cocolvis_root, tmp_path):
    workdir = tmp_path / "run"
    with pytest.warns(UserWarning, match="RANDOMLY initialised"):
        rc = _cli(["train", "--config", str(Path("configs/tiny.py").absolute()), "--workdir", str(workdir),
                   "--data", f"cocolvis:{cocolvis_root}", "--max-steps", "6", "--no-progress",
                   "--set", "keep_checkpoints=2", "log_every_steps=2", "--compilation-cache", "none"])
    assert rc == 0
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["4", "6"]
    saved = json.loads((workdir / "train_config.json").read_text())
    assert saved["keep_checkpoints"] == 2 and saved["data_source"] == f"cocolvis:{cocolvis_root}"
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) and 0 <= r["iou"] <= 1 and r["lr"] == pytest.approx(1e-3) for r in rows)
    assert "images_per_sec" in rows[-1]

    # The exported directory is what users load; it holds the step-6 parameters.
    model, params = load_checkpoint(workdir / "export")
    assert model.config == CONFIG.model
    assert json.loads((workdir / "export" / "config.json").read_text())["step"] == 6
    tx = make_optimizer(CONFIG)
    state = TrainCheckpointer(workdir, CONFIG).restore_state(abstract_train_state(CONFIG, make_mesh(), tx))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.full_params()), jax.device_get(params))
    image = jnp.asarray(np.random.default_rng(0).random((1, 112, 112, 3), np.float32))
    points = -jnp.ones((1, 48, 3)).at[0, 0].set(jnp.array([50.0, 60.0, 1.0]))
    logits = model.apply({"params": params}, image, jnp.zeros((1, 112, 112, 1)), points)
    assert logits.shape == (1, 112, 112, 1) and bool(jnp.all(jnp.isfinite(logits)))

    # ... and evaluates with `skipclick evaluate` (NoC protocol; the tiny model at its 112 px training size).
    from skipclick_jax.data import synthetic
    from skipclick_jax.eval.command import main as evaluate

    synthetic.write_folder(tmp_path / "eval", num_images=1, seed=3)
    assert evaluate(["--checkpoint", str(workdir / "export"), "--datasets", f"folder:{tmp_path / 'eval'}",
                     "--mode", "fixed112", "--n-clicks", "2", "--max-samples", "1", "--no-progress",
                     "--out", str(tmp_path / "noc.json")]) == 0
    assert (tmp_path / "noc.json").exists()

    # TensorBoard: one scalar summary per logging interval (the first step alone, then every 2 steps).
    scalars = _tensorboard_scalars(workdir)
    assert {"train/loss", "train/iou", "train/lr", "train/images_per_sec"} <= set(scalars)
    assert [step for step, _ in scalars["train/loss"]] == [1, 2, 4, 6]
    assert scalars["train/loss"][2][1] == pytest.approx((rows[2]["loss"] + rows[3]["loss"]) / 2, rel=1e-6)


def _logged_steps(workdir: Path) -> list[int]:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:  # a line being written
            break
    return steps


def _killed_run(workdir: Path, cocolvis_root: Path, kill_after_checkpoint: int, logged_past: int = 0) -> None:
    """Run `skipclick train` in a subprocess and SIGKILL it as soon as a checkpoint step exists and the
    metrics of `logged_past` steps after it are logged (steps whose state the resumed run must redo)."""
    script = (
        "import argparse, sys\n"
        "from skipclick_jax.train import command\n"
        "p = argparse.ArgumentParser(); command.register(p.add_subparsers(dest='command'))\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.run(a))\n"
    )
    argv = [sys.executable, "-c", script, "train", "--config", "tiny", "--workdir", str(workdir),
            "--data", f"cocolvis:{cocolvis_root}", "--no-progress",
            "--set", "checkpoint_every_steps=4", "--set", "export_with_checkpoints=false", "--set", "log_every_steps=1"]
    env = {**os.environ, "JAX_DEFAULT_MATMUL_PRECISION": "highest"}  # as tests/conftest.py sets in-process
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = workdir / "checkpoints" / str(kill_after_checkpoint)
    deadline = time.monotonic() + 240
    try:
        while not (target.exists() and max(_logged_steps(workdir), default=0) >= kill_after_checkpoint + logged_past):
            if proc.poll() is not None:
                raise AssertionError(f"training exited early:\n{proc.stderr.read().decode()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("no checkpoint within 240 s")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: in-flight saves are lost
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def test_kill_and_resume_continues_exactly(cocolvis_root, tmp_path):
    config = dataclasses.replace(CONFIG, checkpoint_every_steps=4, export_with_checkpoints=False,
                                 data_source=f"cocolvis:{cocolvis_root}", log_every_steps=1)
    reference = tmp_path / "reference"
    with pytest.warns(UserWarning, match="RANDOMLY"):
        loop.train(config, reference, max_steps=8, progress=False)

    resumed = tmp_path / "killed"
    _killed_run(resumed, cocolvis_root, kill_after_checkpoint=4, logged_past=2)
    checkpointer = TrainCheckpointer(resumed, config)
    start = checkpointer.latest_step()
    checkpointer.close()
    assert start == 4  # killed within milliseconds of the step-4 checkpoint appearing
    killed_losses = _losses(resumed)
    assert max(killed_losses) >= 6  # steps 5 and 6 were logged, but their state was never checkpointed
    result = loop.train(config, resumed, max_steps=8, progress=False)  # resumes: no new parameters drawn
    assert result.step == 8

    # Each step logged once, in metrics.jsonl and as TensorBoard shows it (steps 5, 6 are the resumed run's).
    assert _logged_steps(resumed) == list(range(1, 9))
    assert [step for step, _ in _tensorboard_scalars(resumed)["train/loss"]] == list(range(1, 9))
    ref, got = _losses(reference), _losses(resumed)
    # The killed process and the resumed one reproduce the uninterrupted run exactly, step for step.
    for step in range(1, 9):
        assert got[step] == ref[step], (step, got[step], ref[step])
    assert all(killed_losses[s] == ref[s] for s in killed_losses)
    tx = make_optimizer(config)
    abstract = abstract_train_state(config, make_mesh(), tx)
    a = TrainCheckpointer(reference, config).restore_state(abstract, 8)
    b = TrainCheckpointer(resumed, config).restore_state(abstract, 8)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(a), jax.device_get(b))


def _patch_step(monkeypatch, at_step: int, action) -> None:
    real = loop.make_train_step

    def patched(*args, **kwargs):
        step_fn = real(*args, **kwargs)

        def wrapped(state, batch):
            state, metrics = step_fn(state, batch)
            if int(jax.device_get(state.step)) >= at_step:
                metrics = action(metrics)
            return state, metrics

        return wrapped

    monkeypatch.setattr(loop, "make_train_step", patched)


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(cocolvis_root, tmp_path, monkeypatch, capsys):
    _patch_step(monkeypatch, 3, lambda m: {**m, "loss": jnp.float32(jnp.nan)})
    workdir = tmp_path / "nan"
    with pytest.warns(UserWarning):
        rc = _cli(["train", "--config", "tiny", "--workdir", str(workdir), "--data", f"cocolvis:{cocolvis_root}",
                   "--set", "checkpoint_every_steps=2", "--no-progress", "--compilation-cache", "none"])
    assert rc == command.EXIT_NONFINITE
    err = capsys.readouterr().err
    assert "loss is nan at step 3" in err and "last good checkpoint is step 2" in err
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["2"]
    assert json.loads((workdir / "export" / "config.json").read_text())["step"] == 2
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3 and rows[-1]["loss"] == "nan"


def test_sigterm_saves_and_stops(cocolvis_root, tmp_path, monkeypatch):
    def terminate(metrics):
        os.kill(os.getpid(), signal.SIGTERM)
        return metrics

    _patch_step(monkeypatch, 3, terminate)
    workdir = tmp_path / "term"
    with pytest.warns(UserWarning):
        rc = _cli(["train", "--config", "tiny", "--workdir", str(workdir), "--data", f"cocolvis:{cocolvis_root}",
                   "--no-progress", "--compilation-cache", "none"])
    assert rc == command.EXIT_SIGNAL
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["3"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_resume_refuses_a_different_data_stream(tmp_path):
    (tmp_path / loop.CONFIG_FILE).write_text(json.dumps(CONFIG.to_dict()))
    with pytest.raises(ValueError, match="batch_size"):
        loop._check_resume_config(tmp_path, dataclasses.replace(CONFIG, batch_size=16, data=CONFIG.data))
    with pytest.warns(UserWarning, match="learning_rate"):
        loop._check_resume_config(tmp_path, dataclasses.replace(CONFIG, learning_rate=1e-4))
    with pytest.raises(ValueError, match="no training data"):
        loop.train(CONFIG, tmp_path / "x", progress=False)


def test_encoder_weights_are_loaded_and_checked(tmp_path):
    from skipclick_jax.config import DinoV2Config
    from skipclick_jax.model import init_params
    from skipclick_jax.weights import save_encoder

    pretrained = init_params(CONFIG.model, seed=7)["encoder"]
    save_encoder(tmp_path / "enc", CONFIG.model.encoder, pretrained)
    params = loop.initial_params(dataclasses.replace(CONFIG, encoder_weights=str(tmp_path / "enc")))
    jax.tree.map(np.testing.assert_array_equal, params["encoder"], pretrained)
    assert not np.array_equal(params["fuse"]["kernel"], init_params(CONFIG.model, seed=7)["fuse"]["kernel"])
    other = DinoV2Config(embed_dim=48, depth=4, num_heads=4, pos_grid=8)
    save_encoder(tmp_path / "other", other, init_params(dataclasses.replace(CONFIG.model, encoder=other))["encoder"])
    with pytest.raises(ValueError, match="encoder is"):
        loop.initial_params(dataclasses.replace(CONFIG, encoder_weights=str(tmp_path / "other")))
