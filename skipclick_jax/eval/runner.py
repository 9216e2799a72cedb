"""Run the NoC protocol on named datasets: dataset roots, network size per dataset, predictor choice.

Dataset roots: ``--data-root DIR`` holds one folder per dataset, named as the original ``config.yml`` names
them (:data:`DATA_ROOT_FOLDERS`; the dataset's own name is accepted as a fallback); ``NAME=PATH`` overrides
point one dataset elsewhere. ``folder:PATH`` and ``coco-json:PATH`` entries name generic sources directly.

Predictor per dataset (all follow SPEC §3.3–3.5):

* ``batch`` 1 — :class:`~skipclick_jax.inference.ClickSession` through
  :func:`~skipclick_jax.eval.loop.evaluate_dataset` (the reference path);
* ``batch`` > 1 — :class:`~skipclick_jax.eval.batched.BatchedEvaluator` (identical results in ``exact`` mode);
* ``zoom_in`` — :class:`~skipclick_jax.eval.zoom_in.ZoomInPredictor` (unbatched).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batched import BatchedEvaluator
from .datasets import EvalDataset, canonical_name, eval_size, expand_dataset_names, get_dataset
from .loop import DatasetResult, evaluate_dataset
from .metrics import summarize
from .models import EvalModel
from .progress import ProgressLog

#: Folder of each dataset below ``--data-root`` (the original ``config.yml`` paths' last component first, then
#: the dataset name). WSESeg classes share one root.
DATA_ROOT_FOLDERS: dict[str, tuple[str, ...]] = {
    "GrabCut": ("GrabCut",),
    "Berkeley": ("Berkeley",),
    "DAVIS": ("DAVIS",),
    "SBD": ("sbd", "SBD"),
    "HQSeg": ("hqseg44k", "HQSeg"),
    "WSESeg": ("sports_tools", "WSESeg"),
    "SHSeg": ("SHSeg",),
    "PascalVOC": ("PascalVOC",),
    "COCO_MVal": ("COCO_MVal",),
}
GENERIC_SOURCES = ("folder", "coco-json")
DEFAULT_BATCH = 4


@dataclass(frozen=True)
class EvalSettings:
    """Protocol and execution settings (defaults = the paper's protocol, SPEC §3.1)."""

    mode: str = "cvpr"
    max_clicks: int = 20
    target_iou: float = 0.95
    thresh: float = 0.49
    min_clicks: int = 1
    flip: bool = True
    zoom_in: bool = False
    batch: int = DEFAULT_BATCH
    batch_mode: str = "exact"
    max_samples: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset to evaluate: its result key, reader name, root folder and network size S."""

    name: str
    reader: str
    root: Path
    size: int


def _root_group(reader: str) -> str:
    return "WSESeg" if reader.startswith("WSESeg_") else reader


def parse_dataset_paths(items: Iterable[str]) -> dict[str, Path]:
    """``["SBD=/data/sbd", "WSESeg=/x"]`` → {canonical name: path}; ``WSESeg`` sets the root of all its classes."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"--dataset-path expects NAME=PATH, got {item!r}")
        key = "WSESeg" if name.strip().lower() == "wseseg" else canonical_name(name)
        out[key] = Path(path.strip()).expanduser()
    return out


def dataset_root(reader: str, data_root: str | Path | None, overrides: Mapping[str, Path]) -> Path:
    """Root folder of dataset ``reader`` (canonical name): override, else ``data_root/<config.yml folder>``."""
    for key in (reader, _root_group(reader)):
        if key in overrides:
            return Path(overrides[key])
    if data_root is None:
        raise ValueError(f"no folder for dataset {reader}: pass --data-root DIR or --dataset-path {reader}=PATH")
    folders = DATA_ROOT_FOLDERS.get(_root_group(reader), (reader,))
    candidates = [Path(data_root) / f for f in folders]
    # The first existing candidate; otherwise the config.yml name, so the reader's error names that folder.
    return next((c for c in candidates if c.exists()), candidates[0])


def network_size(reader: str, mode: str) -> int:
    """Side S of the square network input for ``reader`` under ``mode`` (SPEC §3.8)."""
    h, w = eval_size(reader, mode)
    if h != w:
        raise ValueError(f"eval mode {mode!r} asks for a {h}x{w} network input; the click engine supports square "
                         "sizes only (use fixed<S>)")
    return h


def resolve_datasets(entries: str | Iterable[str], data_root: str | Path | None = None,
                     overrides: Mapping[str, Path] | None = None, mode: str = "cvpr") -> list[DatasetSpec]:
    """Parse a ``--datasets`` list (names, ``WSESeg``, ``folder:PATH``, ``coco-json:PATH``) into specs."""
    overrides = overrides or {}
    items = entries.split(",") if isinstance(entries, str) else list(entries)
    specs: list[DatasetSpec] = []
    for raw in (i.strip() for i in items):
        if not raw:
            continue
        kind, sep, path = raw.partition(":")
        if sep and kind.strip().lower() in GENERIC_SOURCES:
            reader = kind.strip().lower()
            if not path.strip():
                raise ValueError(f"dataset entry {raw!r} needs a path: {reader}:PATH")
            specs.append(DatasetSpec(f"{reader}:{path.strip()}", reader, Path(path.strip()).expanduser(),
                                     network_size(reader, mode)))
            continue
        for reader in expand_dataset_names(raw):
            if reader in GENERIC_SOURCES:
                raise ValueError(f"{reader} needs a path: {reader}:PATH")
            specs.append(DatasetSpec(reader, reader, dataset_root(reader, data_root, overrides),
                                     network_size(reader, mode)))
    if not specs:
        raise ValueError("no datasets given")
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"dataset listed twice: {', '.join(duplicates)}")
    return specs


def open_dataset(spec: DatasetSpec, skip_corrupt: bool = False, cache_dir: str | Path | None = None,
                 ignore_value: int | None = None) -> EvalDataset:
    """The reader for ``spec`` (SBD caches its instance list under ``cache_dir``)."""
    kwargs: dict[str, Any] = {}
    if spec.reader == "SBD" and cache_dir is not None:
        kwargs["cache_dir"] = Path(cache_dir) / "datasets"
    if spec.reader == "folder" and ignore_value is not None:
        kwargs["ignore_value"] = ignore_value
    return get_dataset(spec.reader, spec.root, skip_corrupt=skip_corrupt, **kwargs)


class _Pending:
    """The samples of ``dataset`` at ``indices`` (those still to evaluate), with a length for progress bars.

    ``taken[k]`` is the dataset index of the k-th sample yielded (skipped samples are not yielded)."""

    def __init__(self, dataset: EvalDataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, indices
        self.name = dataset.name
        self.taken: list[int] = []  # dataset index of each sample yielded so far

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Any]:
        for i in self.indices:
            for sample in self.dataset.iter_indices([i]):
                self.taken.append(i)
                yield sample


def warm_up_session(engine: Any) -> None:
    """Compile the session path's encode and click step on dummy inputs (keeps compilation out of timings)."""
    import jax
    import numpy as np

    s = engine.size
    features = engine.encode(engine.to_network(np.zeros((1, s, s, 3), np.float32)))
    prev = engine.to_network(np.zeros((1, s, s, 1), np.float32))
    jax.block_until_ready(engine.click(features, prev, [[(0.0, 0.0, True)]]))


def predictor_for(model: EvalModel, dataset: str, mode: str = "cvpr", flip: bool = True,
                  zoom_in: bool = False) -> Any:
    """An unbatched :class:`~skipclick_jax.eval.loop.Predictor` for ``dataset`` under ``mode``.

    A :class:`~skipclick_jax.inference.ClickSession` at the dataset's network size (the original evaluation
    predictor, zoom-in suppressed), or with ``zoom_in`` the :class:`~skipclick_jax.eval.zoom_in.ZoomInPredictor`.
    """
    return _unbatched_predictor(model.engine(network_size(canonical_reader(dataset), mode), flip), zoom_in)


def _unbatched_predictor(engine: Any, zoom_in: bool) -> Any:
    if zoom_in:
        from .zoom_in import ZoomInPredictor

        return ZoomInPredictor(engine)
    from ..inference import ClickSession

    return ClickSession(engine=engine)


def canonical_reader(name: str) -> str:
    """Reader name of a dataset name (``folder``/``coco-json`` entries may carry a ``:PATH``)."""
    kind = name.partition(":")[0].strip().lower()
    return kind if kind in GENERIC_SOURCES else canonical_name(name)


def evaluate_spec(model: EvalModel, spec: DatasetSpec, settings: EvalSettings, dataset: EvalDataset,
                  progress: bool = True, log: ProgressLog | None = None) -> DatasetResult:
    """Evaluate one dataset with the predictor ``settings`` call for (module docstring).

    With a progress ``log``, samples it already holds are not evaluated again and every finished sample is
    recorded in it as soon as it is done; the result covers all samples, in dataset order.
    """
    ids = dataset.ids()[: settings.max_samples]
    done = log.start_dataset(spec.name, ids) if log is not None else {}
    samples = _Pending(dataset, [i for i in range(len(ids)) if i not in done])
    new: dict[int, Any] = {}

    def finished(position: int, result: Any) -> None:
        index = samples.taken[position]  # the dataset index of the position-th sample read
        new[index] = result
        if log is not None:
            log.record(spec.name, index, result)

    common = dict(max_clicks=settings.max_clicks, target_iou=settings.target_iou, thresh=settings.thresh,
                  min_clicks=settings.min_clicks)
    start = time.perf_counter()
    if not samples.indices:  # everything was finished before an interruption
        result = DatasetResult(name=spec.name, samples=[], metrics={}, settings=dict(common, batch=settings.batch,
                                                                                 zoom_in=settings.zoom_in))
        warm_s = 0.0
    elif settings.zoom_in or settings.batch <= 1:
        engine = model.engine(spec.size, settings.flip)
        warm_up_session(engine)
        predictor = _unbatched_predictor(engine, settings.zoom_in)
        warm_s = time.perf_counter() - start
        result = evaluate_dataset(predictor, samples, name=spec.name, progress=progress, on_done=finished,
                                  **common)
        result.settings.update(batch=1, zoom_in=settings.zoom_in)
    else:
        engine = model.engine(spec.size, settings.flip)
        evaluator = BatchedEvaluator(engine, settings.batch, mode=settings.batch_mode, **common)
        evaluator.warm_up()
        warm_s = time.perf_counter() - start
        result = evaluator.evaluate(samples, name=spec.name, progress=progress, total=len(samples),
                                    on_done=finished)
        result.settings["zoom_in"] = False
    result.settings.update(size=spec.size, flip=settings.flip, mode=settings.mode, warm_up_s=warm_s,
                           resumed_samples=len(done), skipped_samples=len(dataset.skipped))
    if done:  # merge with the samples finished before the interruption, in dataset order
        result.timed = result.samples
        merged = {**done, **new}
        result.samples = [merged[i] for i in sorted(merged)]
        result.metrics = summarize([r.ious for r in result.samples], max_clicks=settings.max_clicks,
                                   target_iou=settings.target_iou)
    return result
