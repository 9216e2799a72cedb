"""Batched NoC evaluation: a pool of samples advanced one click per step, refilled as samples finish.

Every sample follows the protocol of :func:`~skipclick_jax.eval.loop.evaluate_sample` with the
:class:`~skipclick_jax.inference.ClickSession` predictor (SPEC §3.3–3.5): the image is resized to S×S and
encoded once when the sample enters the pool; each step computes one click per active sample on the host
(clicker, float64 network coordinates), resizes each previous probability map to S×S, runs **one** compiled
call for the whole pool, resizes each probability map back to its image, thresholds it and records the IoU.
A sample leaves the pool when it reaches the target IoU (after ``min_clicks``) or runs out of clicks, and
the next sample of the dataset takes its slot (continuous batching).

Two step implementations:

* ``"exact"`` (default): the compiled call maps the batch-1 click step over the pool slots
  (``jax.lax.map``), so every sample sees bit for bit the arithmetic of the unbatched session — XLA:CPU
  lowers reductions (LayerNorm, GroupNorm) differently for different batch sizes, so a plain batched call
  differs from the batch-1 call in the last float bits. It saves the per-sample dispatch and host overhead.
  Idle slots (at the end of a dataset) are skipped with ``lax.cond``, so they cost nothing.
* ``"vectorized"``: one plain batched click step over all slots (one features batch). Bigger matrix
  products, meant for accelerators (on a 2-core CPU it was no faster than ``exact``), but probabilities
  differ from the unbatched path by float rounding (~1e-7), which can flip a pixel that sits at the
  threshold (seen: IoUs differing by 1e-7 with the same clicks). Idle slots are computed.

The resizes between image and network size use the engine's compiled ``to_network``/``to_image`` (the
session's own functions), so the previous-mask round trip is identical too.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..inference import as_rgb_float
from ..inference.engine import ClickEngine
from ..model.clicks import ClickOffsets
from ..model.skipclick import ImageFeatures
from .clicker import Clicker
from .loop import DatasetResult, SampleResult, check_gt
from .metrics import iou, summarize

BATCH_MODES = ("exact", "vectorized")
_STEPS: weakref.WeakKeyDictionary[ClickEngine, dict[str, Any]] = weakref.WeakKeyDictionary()


@dataclass
class _Slot:
    """One sample in the pool."""

    order: int  # position in the dataset's iteration order
    sample_id: str
    gt: np.ndarray
    hw: tuple[int, int]
    features: ImageFeatures
    clicker: Clicker
    pred: np.ndarray
    network_clicks: list[tuple[float, float, bool]] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)
    prev: jax.Array | None = None  # (1, H, W, 1) probability after the last click, on device


class _FeaturePool:
    """Per-slot image features stacked on a leading slot axis: leaves (B, F, ...), F = 2 with flip TTA."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.tokens: jax.Array | None = None
        self.skip: tuple[jax.Array, ...] | None = None
        self.pos_embed: jax.Array | None = None

    def put(self, slot: int, features: ImageFeatures) -> None:
        """Write one sample's features (batch F) into ``slot``."""
        new = (features.tokens, features.skip_terms)
        if self.tokens is None:
            # The first sample fills every slot, so idle slots always hold valid features.
            self.tokens, self.skip = _fill_slots(new, self.batch)
            self.pos_embed = features.pos_embed  # depends on the weights and the size only
            return
        self.tokens, self.skip = _put_slot((self.tokens, self.skip), new, jnp.int32(slot))


@functools.partial(jax.jit, donate_argnums=(0,))
def _put_slot(pool: Any, new: Any, slot: jax.Array) -> Any:
    return jax.tree.map(lambda p, n: jax.lax.dynamic_update_index_in_dim(p, n.astype(p.dtype), slot, 0), pool, new)


@functools.partial(jax.jit, static_argnums=(1,))
def _fill_slots(new: Any, batch: int) -> Any:
    return jax.tree.map(lambda n: jnp.broadcast_to(n[None], (batch, *n.shape)), new)


class _Group:
    """``batch`` slots stepped by one compiled call, their feature pool and the call's pending output."""

    def __init__(self, batch: int) -> None:
        self.slots: list[_Slot | None] = [None] * batch
        self.pool = _FeaturePool(batch)
        self.pending: jax.Array | None = None

    @property
    def busy(self) -> bool:
        return self.pending is not None or any(s is not None for s in self.slots)


def _compiled_step(engine: ClickEngine, mode: str) -> Callable[..., jax.Array]:
    """The jitted pool step of ``mode`` for ``engine``, shared by every evaluator of that engine."""
    steps = _STEPS.setdefault(engine, {})
    if mode not in steps:
        # A weak reference: the cache must not keep the engine alive. It is only read while tracing.
        impl = _exact_step if mode == "exact" else _vectorized_step
        steps[mode] = jax.jit(functools.partial(impl, weakref.ref(engine)))
    return steps[mode]


def _split_offsets(offsets: ClickOffsets, n: int, flip: bool) -> tuple[jax.Array, jax.Array]:
    """(F·B, 2N, S) offsets laid out [items | mirrored items] → (B, F, 2N, S)."""
    f = 2 if flip else 1
    dy2, dx2 = (o.reshape(f, n, *o.shape[1:]).swapaxes(0, 1) for o in offsets)
    return dy2, dx2


def _exact_step(engine_ref: Callable[[], ClickEngine], variables: Any, tokens: jax.Array, skip: Any,
                pos_embed: jax.Array, prevs: tuple[jax.Array, ...], offsets: ClickOffsets,
                active: jax.Array) -> jax.Array:
    """(B, 1, S, S, 1) probabilities: the engine's batch-1 click step mapped over the slots."""
    engine = engine_ref()
    dy2, dx2 = _split_offsets(offsets, len(prevs), engine.flip)
    prev = jnp.stack(prevs)  # (B, 1, S, S, 1)

    def one(args: Any) -> jax.Array:
        tok, sk, p, a, b, on = args
        run = lambda: engine.click_step(  # noqa: E731 - the engine's own batch-1 step, same arithmetic
            variables, ImageFeatures(tok, sk, pos_embed), p, ClickOffsets(a, b))
        return jax.lax.cond(on, run, lambda: jnp.zeros_like(p))

    return jax.lax.map(one, (tokens, skip, prev, dy2, dx2, active))


def _vectorized_step(engine_ref: Callable[[], ClickEngine], variables: Any, tokens: jax.Array, skip: Any,
                     pos_embed: jax.Array, prevs: tuple[jax.Array, ...], offsets: ClickOffsets,
                     active: jax.Array) -> jax.Array:
    """(B, 1, S, S, 1) probabilities from one batched click step over all slots (idle ones included)."""
    del active
    engine = engine_ref()
    # Slot-major (B, F, ...) → the engine's feature layout [images | mirrored images] (F·B, ...).
    flat = lambda x: x.swapaxes(0, 1).reshape(-1, *x.shape[2:])  # noqa: E731
    features = ImageFeatures(flat(tokens), None if skip is None else tuple(map(flat, skip)), pos_embed)
    return engine.click_step(variables, features, jnp.concatenate(prevs), offsets)[:, None]


class BatchedEvaluator:
    """Evaluate samples with a pool of ``batch`` slots at one network size (see the module docstring).

    Args:
        engine: the compiled ``ClickEngine`` of the network size (its ``flip`` setting is used).
        batch: samples per compiled call (slots of one group).
        mode: ``"exact"`` or ``"vectorized"``.
        max_clicks, target_iou, thresh, min_clicks: the protocol's settings (SPEC §3.1, §3.4).
        pipeline: groups of ``batch`` slots stepped in turn, so that the host work of one group (clicker,
            IoU) overlaps the compiled step of another; ``pipeline · batch`` samples are in flight.
    """

    def __init__(self, engine: ClickEngine, batch: int = 4, *, mode: str = "exact", max_clicks: int = 20,
                 target_iou: float = 0.95, thresh: float = 0.49, min_clicks: int = 1, pipeline: int = 2) -> None:
        if batch < 1 or pipeline < 1:
            raise ValueError(f"batch and pipeline must be >= 1, got {batch} and {pipeline}")
        if mode not in BATCH_MODES:
            raise ValueError(f"batch mode must be one of {BATCH_MODES}, got {mode!r}")
        self.engine, self.batch, self.mode, self.pipeline = engine, batch, mode, pipeline
        self.max_clicks, self.target_iou, self.thresh, self.min_clicks = max_clicks, target_iou, thresh, min_clicks
        self._step = _compiled_step(engine, mode)
        self._zeros = engine.put(np.zeros((1, engine.size, engine.size, 1), np.float32))

    def warm_up(self) -> None:
        """Compile the encode, the pool updates and the pool step on dummy inputs (keeps compilation out of
        the timings; the per-image-size resizes still compile on first use)."""
        s = self.engine.size
        features = self.engine.encode(self.engine.to_network(np.zeros((1, s, s, 3), np.float32)))
        group = _Group(self.batch)
        group.pool.put(0, features)
        group.pool.put(0, features)
        jax.block_until_ready(self._dispatch(group))

    # --- host side --------------------------------------------------------------------------------
    def _enter(self, order: int, sample: Any) -> _Slot:
        gt = check_gt(sample.image, sample.gt, str(sample.id))
        rgb = as_rgb_float(sample.image)
        # Exactly ClickSession.set_image: align_corners resize on device, batch-1 encode.
        features = self.engine.encode(self.engine.to_network(rgb[None]))
        return _Slot(order, str(sample.id), gt, gt.shape, features, Clicker(gt), np.zeros(gt.shape, bool))

    def _network_click(self, slot: _Slot) -> None:
        click = slot.clicker.next_click(slot.pred)
        h, w = slot.hw
        s = self.engine.size
        # The session's mapping S·y/H, S·x/W in float64 (SPEC trap 6).
        slot.network_clicks.append(((s * float(click.y)) / h, (s * float(click.x)) / w, click.is_positive))

    def _record(self, slot: _Slot, prob_network: jax.Array) -> bool:
        """Resize the slot's probability map back, score it; True when the sample is finished."""
        prob = self.engine.to_image(prob_network, slot.hw)
        slot.prev = prob
        slot.pred = np.asarray(prob)[0, :, :, 0] > self.thresh
        value = iou(slot.gt, slot.pred)
        slot.ious.append(value)
        k = len(slot.ious)
        return (value >= self.target_iou and k >= self.min_clicks) or k >= self.max_clicks

    def _dispatch(self, group: _Group) -> jax.Array:
        """Compute the next click of every active slot and launch the (asynchronous) compiled step."""
        for slot in group.slots:
            if slot is not None:
                self._network_click(slot)
        prevs = tuple(self._zeros if s is None or s.prev is None else self.engine.to_network(s.prev)
                      for s in group.slots)
        offsets = self.engine.encode_clicks([[] if s is None else s.network_clicks for s in group.slots])
        active = self.engine.put(np.array([s is not None for s in group.slots]))
        pool = group.pool
        return self._step(self.engine.variables, pool.tokens, pool.skip, pool.pos_embed, prevs, offsets, active)

    def run(self, samples: Iterable[Any], on_done: Callable[[SampleResult], None] | None = None
            ) -> Iterator[tuple[int, SampleResult]]:
        """Evaluate ``samples`` (objects with ``id``, ``image``, ``gt``); yields (order, result) as samples finish.

        The slots form ``pipeline`` groups stepped in turn: while the compiled step of one group runs
        (asynchronously), the host scores the other group's last output and computes its next clicks.
        """
        source = iter(enumerate(samples))
        groups = [_Group(self.batch) for _ in range(self.pipeline)]
        exhausted = False

        def refill(group: _Group) -> None:
            nonlocal exhausted
            for i, slot in enumerate(group.slots):
                if slot is None and not exhausted:
                    try:
                        order, sample = next(source)
                    except StopIteration:
                        exhausted = True
                        return
                    group.slots[i] = new = self._enter(order, sample)
                    group.pool.put(i, new.features)

        for group in groups:
            refill(group)
        while any(g.busy for g in groups):
            for group in groups:
                if group.pending is not None:
                    out, group.pending = group.pending, None
                    for i, slot in enumerate(group.slots):
                        if slot is not None and self._record(slot, out[i]):
                            result = SampleResult(clicks=[(c.y, c.x, c.is_positive) for c in slot.clicker.clicks],
                                                  ious=slot.ious, id=slot.sample_id)
                            group.slots[i] = None
                            if on_done is not None:
                                on_done(result)
                            yield slot.order, result
                    refill(group)
                if group.busy:
                    group.pending = self._dispatch(group)

    def evaluate(self, samples: Iterable[Any], name: str = "dataset", progress: bool = True,
                 total: int | None = None, on_done: Callable[[int, SampleResult], None] | None = None
                 ) -> DatasetResult:
        """Evaluate a whole dataset; results in dataset order, with the summary metrics and wall time.

        ``on_done(position, result)`` is called as soon as a sample is finished (in completion order;
        position: in ``samples``)."""
        if total is None:
            try:
                total = len(samples)  # type: ignore[arg-type]
            except TypeError:
                total = None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=name, leave=False, dynamic_ncols=True, unit="sample")
        start = time.perf_counter()
        try:
            done = {}
            for order, result in self.run(samples):
                done[order] = result
                if bar is not None:
                    bar.update(1)
                if on_done is not None:
                    on_done(order, result)
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - start
        results = [done[k] for k in sorted(done)]
        metrics = summarize([r.ious for r in results], max_clicks=self.max_clicks, target_iou=self.target_iou)
        settings = {"max_clicks": self.max_clicks, "target_iou": self.target_iou, "thresh": self.thresh,
                    "min_clicks": self.min_clicks, "batch": self.batch, "batch_mode": self.mode,
                    "pipeline": self.pipeline}
        return DatasetResult(name=name, samples=results, metrics=metrics, elapsed_s=elapsed, settings=settings)
