"""Evaluation during training (NoC protocol, best checkpoint), the profiler trace and throughput accounting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from skipclick_jax import load_checkpoint
from skipclick_jax.data import synthetic
from skipclick_jax.train import loop
from skipclick_jax.train.config import preset
from skipclick_jax.train.evaluation import TrainEvaluator

CONFIG = preset("tiny")  # the compiled train step other tests share through the compilation cache


def _compiles(names: list[str]):
    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            names.append(kwargs.get("fun_name", ""))

    return listener


def _scalars(workdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(workdir / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    return synthetic.write_folder(tmp_path_factory.mktemp("heldout"), num_images=2, seed=3, size_range=(120, 180))


@pytest.mark.filterwarnings("ignore:folder.*has no mask")
def test_training_evaluates_keeps_the_best_profiles_and_accounts_time(cocolvis_root, heldout, tmp_path):
    config = dataclasses.replace(
        CONFIG, data_source=f"cocolvis:{cocolvis_root}", eval_every_steps=2, eval_data=f"folder:{heldout}",
        eval_max_clicks=3, eval_max_samples=3, eval_batch=2, checkpoint_every_steps=4, log_every_steps=1)
    workdir = tmp_path / "run"
    compiled: list[str] = []
    listener = _compiles(compiled)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with pytest.warns(UserWarning, match="RANDOMLY"):
            result = loop.train(config, workdir, max_steps=4, progress=False, profile_steps=(3, 3), peak_tflops=1.0)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert result.step == 4
    assert compiled.count("jit(step)") == 1  # the train step, once; evaluations compile only their own functions

    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/NoC@90" in r]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        assert 1 <= r["eval/NoC@85"] <= 3 and 1 <= r["eval/NoC@90"] <= 3
        assert [k for k in r if k.startswith("eval/mIoU@")] == ["eval/mIoU@1", "eval/mIoU@2", "eval/mIoU@3"]
        assert all(0 <= r[f"eval/mIoU@{k}"] <= 1 for k in (1, 2, 3))
        assert r["eval/samples"] == 3
    # The best by NoC@90 (fewer is better, the first of equal ones kept) is exported beside export/.
    best = json.loads((workdir / "best" / "config.json").read_text())
    values = [r["eval/NoC@90"] for r in evals]
    assert best["best_metric"] == "NoC@90" and best["best_value"] == min(values)
    assert best["step"] == evals[values.index(min(values))]["step"]
    assert [r["eval/best"] for r in evals] == [True, values[1] < values[0]]
    load_checkpoint(workdir / "best")  # loads like export/

    # Throughput accounting on every logged step: images/s, data wait vs step time, MFU.
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    for r in train_rows:
        assert r["images_per_sec"] > 0 and r["data_s"] >= 0 and r["step_s"] > 0
        assert 0 <= r["data_fraction"] <= 1
        assert r["mfu"] == pytest.approx(r["achieved_tflops"] / (1.0 * jax.device_count()))
        assert r["achieved_tflops"] > 0
    scalars = _scalars(workdir)
    assert [s for s, _ in scalars["eval/NoC_90"]] == [2, 4]
    assert {"eval/NoC_85", "eval/mIoU_1", "eval/mIoU_3"} <= set(scalars)
    assert {"train/mfu", "train/data_s", "train/step_s", "train/images_per_sec"} <= set(scalars)

    # The profile of step 3: a TensorBoard/Perfetto trace with the step annotation.
    traces = list((workdir / "profile").rglob("*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0
    assert b"step_num" in traces[0].read_bytes()


@pytest.mark.filterwarnings("ignore:folder.*has no mask")
def test_evaluator_reuses_its_compiled_functions(heldout, tmp_path):
    from skipclick_jax.model import init_params

    config = dataclasses.replace(CONFIG, eval_every_steps=1, eval_data=f"folder:{heldout}", eval_max_clicks=2,
                                 eval_max_samples=1, eval_batch=2)
    evaluator = TrainEvaluator(config, tmp_path)
    first = evaluator.evaluate(init_params(config.model, 0))
    compiled: list[str] = []
    listener = _compiles(compiled)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        second = evaluator.evaluate(init_params(config.model, 1))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    # Only the variables' preparation for the new parameters (if the engine has one) may be traced again.
    assert [name for name in compiled if "prepare" not in name] == []
    assert first["samples"] == second["samples"] == 1
    # Other parameters, other IoUs: the new weights were used.
    assert {k: v for k, v in first.items() if k != "seconds"} != {k: v for k, v in second.items() if k != "seconds"}


def test_bad_evaluation_and_profile_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="eval_data is empty"):
        dataclasses.replace(CONFIG, eval_every_steps=5)
    with pytest.raises(ValueError, match="best_metric must be one of"):
        dataclasses.replace(CONFIG, best_metric="NoC@99")
    with pytest.raises(ValueError, match="expected A:B"):
        loop.parse_profile_steps("3-4")
    with pytest.raises(ValueError, match="need 1 <= A <= B"):
        loop.parse_profile_steps("5:4")
    assert loop.parse_profile_steps("7:9") == (7, 9)
    config = dataclasses.replace(CONFIG, eval_every_steps=1, eval_data=f"folder:{tmp_path / 'missing'}")
    with pytest.raises(Exception, match="missing"):
        TrainEvaluator(config, tmp_path)
    np.testing.assert_equal(loop.parse_profile_steps("2"), (2, 2))
