"""Evaluation during training: the project's NoC protocol (SPEC 3) on a held-out set, in the training process.

Every `eval_every_steps` the current parameters are evaluated with `skipclick evaluate`'s own batched
evaluator (`BatchedEvaluator`, exact mode: the same clicks and IoUs as the unbatched session) at the
training size (`fixed<S>`). One `ClickEngine` is built at the first evaluation and its parameters are
replaced afterwards, so later evaluations reuse its compiled encode / click steps; the train step is not
touched (it has its own executable). Every process evaluates the whole set on its first local device (no
collective, identical results; process 0 logs) — fine for a small held-out set, and nothing waits on a
peer meanwhile.

The best parameters by `best_metric` are exported (load_checkpoint format) to <workdir>/best, whose
config.json also records the step and the metric value, so a resumed run knows the best so far.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .config import TrainConfig, metric_is_better

BEST_DIR = "best"


def eval_row(metrics: dict[str, Any], max_clicks: int) -> dict[str, float]:
    """Flat scalars of an evaluation summary: NoC@80…95, NoF@…, and mIoU@1…mIoU@max_clicks."""
    row: dict[str, float] = {}
    for key, value in metrics.items():
        if key == "mIoU@k":
            row.update({f"mIoU@{k}": float(v) for k, v in enumerate(value[:max_clicks], start=1)})
        elif isinstance(value, int | float) and value is not None:
            row[key] = float(value)
    return row


class TrainEvaluator:
    """NoC evaluation of training parameters on `config.eval_data` (see the module docstring)."""

    def __init__(self, config: TrainConfig, workdir: Path) -> None:
        from ..eval.runner import open_dataset, resolve_datasets

        self.config = config
        self.size = config.model.image_size
        specs = resolve_datasets(config.eval_data, config.eval_data_root or None, mode=f"fixed{self.size}")
        if len(specs) != 1:
            raise ValueError(f"eval_data {config.eval_data!r} names {len(specs)} datasets; give exactly one")
        self.spec = specs[0]
        self.dataset = open_dataset(self.spec)
        if len(self.dataset) == 0:
            raise ValueError(f"eval_data {config.eval_data!r} holds no samples")
        self.best_dir = workdir / BEST_DIR
        self.best_value, self.best_step = _read_best(self.best_dir, config.best_metric)
        self._engine = None
        self._evaluator = None

    def _refresh(self, params: Any) -> Any:
        """The evaluator, with its engine holding `params` (built, and compiled, on the first call)."""
        from ..eval.batched import BatchedEvaluator
        from ..inference import ClickEngine
        from .step import make_model

        if self._engine is None:
            # The first local device: jax.devices()[0] belongs to process 0 in a multi-process run.
            self._engine = ClickEngine(make_model(self.config), params, self.size, flip=self.config.eval_flip,
                                       device=jax.local_devices()[0])
            self._evaluator = BatchedEvaluator(self._engine, self.config.eval_batch,
                                               max_clicks=self.config.eval_max_clicks)
        else:
            self._engine.set_params(params)
        return self._evaluator

    def evaluate(self, full_params: Any) -> dict[str, float]:
        """NoC@85/90 (and the other thresholds), NoF and mIoU@k of `full_params` (a replicated tree)."""
        host = jax.tree.map(lambda x: np.asarray(jax.device_get(x), np.float32), full_params)
        evaluator = self._refresh(host)
        count = self.config.eval_max_samples or len(self.dataset)
        samples = self.dataset.iter_indices(range(min(count, len(self.dataset))))
        start = time.perf_counter()
        result = evaluator.evaluate(samples, name=self.spec.name, progress=False)
        row = eval_row(result.metrics, self.config.eval_max_clicks)
        row["samples"] = float(len(result.samples))
        row["seconds"] = time.perf_counter() - start
        return row

    def update_best(self, step: int, row: dict[str, float], model_config: Any, full_params: Any) -> bool:
        """Export `full_params` to <workdir>/best when `row` beats the best so far (process 0 writes)."""
        from .checkpointing import export_params

        name = self.config.best_metric
        value = row.get(name)
        if value is None or not np.isfinite(value) or not metric_is_better(name, value, self.best_value):
            return False
        export_params(self.best_dir, model_config, full_params,
                      {"step": step, "best_metric": name, "best_value": value, "train_config": self.config.name})
        self.best_value, self.best_step = value, step
        return True


def _read_best(directory: Path, metric: str) -> tuple[float | None, int | None]:
    """(value, step) recorded in an existing <workdir>/best for `metric` (None, None otherwise)."""
    path = directory / "config.json"
    if not path.exists():
        return None, None
    record = json.loads(path.read_text())
    if record.get("best_metric") != metric:
        return None, None  # chosen by another metric: the first evaluation of this run replaces it
    return float(record["best_value"]), int(record["step"])
