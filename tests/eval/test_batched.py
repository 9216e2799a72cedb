"""Batched evaluator: identical to the unbatched session loop per sample, continuous refill, edge cases."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from skipclick_jax.eval.batched import BatchedEvaluator, _Group
from skipclick_jax.eval.datasets import EvalSample
from skipclick_jax.eval.loop import evaluate_dataset
from skipclick_jax.inference import ClickSession

from .conftest import SIZE

pytest.importorskip("torch")  # the model fixture is written by the PyTorch reference


def _session_results(engine, samples, **kw):
    return evaluate_dataset(ClickSession(engine=engine), samples, progress=False, **kw)


@pytest.mark.parametrize("pipeline", [1, 2])
def test_exact_batches_equal_the_session_loop(eval_model, real_samples, pipeline):
    """Per sample: same clicks, bit-identical IoUs; samples finish at different clicks (target 0.3), so
    slots are refilled mid-run; results come back in dataset order."""
    engine = eval_model.engine(SIZE)
    kw = dict(max_clicks=8, target_iou=0.3)
    samples = real_samples + real_samples[:3]  # 9 objects through 3 slots
    ours = BatchedEvaluator(engine, 3, pipeline=pipeline, **kw).evaluate(samples, progress=pipeline == 2)
    ref = _session_results(engine, samples, **kw)
    assert [s.id for s in ours.samples] == [s.id for s in samples]
    assert len({len(s.ious) for s in ours.samples}) > 1  # early stops at different clicks
    for a, b in zip(ours.samples, ref.samples, strict=True):
        assert a.clicks == b.clicks and a.ious == b.ious, a.id
    assert ours.metrics == ref.metrics
    assert ours.settings["batch"] == 3 and ours.elapsed_s > 0


def test_vectorized_step_matches_exact_step_to_rounding(eval_model, real_samples):
    """The plain batched step (one features batch) equals the mapped batch-1 steps up to float rounding."""
    engine = eval_model.engine(SIZE)
    outs = {}
    for mode in ("exact", "vectorized"):
        ev = BatchedEvaluator(engine, 3, mode=mode)
        group = _Group(3)
        for i, s in enumerate(real_samples[:3]):
            group.slots[i] = ev._enter(i, s)
            group.pool.put(i, group.slots[i].features)
        outs[mode] = np.asarray(ev._dispatch(group))
    assert outs["exact"].shape == (3, 1, SIZE, SIZE, 1)
    np.testing.assert_allclose(outs["vectorized"], outs["exact"], rtol=0, atol=2e-6)  # measured 4.5e-7
    res = BatchedEvaluator(engine, 3, mode="vectorized", max_clicks=3).evaluate(real_samples, progress=False)
    assert [s.id for s in res.samples] == [s.id for s in real_samples]
    assert all(len(s.ious) == 3 and s.clicks[0][2] for s in res.samples)


def test_fewer_samples_than_slots_and_empty_dataset(eval_model, real_samples):
    engine = eval_model.engine(SIZE)
    one = BatchedEvaluator(engine, 3, max_clicks=2).evaluate(real_samples[:1], progress=False)
    ref = _session_results(engine, real_samples[:1], max_clicks=2)
    assert one.samples[0].clicks == ref.samples[0].clicks and one.samples[0].ious == ref.samples[0].ious
    empty = BatchedEvaluator(engine, 3).evaluate([], name="empty", progress=False)
    assert empty.samples == [] and np.isnan(empty.metrics["NoC@90"]) and empty.metrics["NoF@95"] == 0


def test_min_clicks_and_target(eval_model, real_samples):
    engine = eval_model.engine(SIZE)
    res = BatchedEvaluator(engine, 3, max_clicks=5, target_iou=0.0, min_clicks=2).evaluate(
        real_samples[:3], progress=False)
    assert [len(s.ious) for s in res.samples] == [2, 2, 2]  # IoU ≥ 0 at once, but at least 2 clicks


def test_bad_inputs(eval_model):
    engine = eval_model.engine(SIZE)
    with pytest.raises(ValueError, match="batch"):
        BatchedEvaluator(engine, 0)
    with pytest.raises(ValueError, match="batch mode"):
        BatchedEvaluator(engine, 2, mode="fast")
    bad = EvalSample("bad", np.zeros((10, 12, 3), np.uint8), np.zeros((10, 11), np.int32))
    with pytest.raises(ValueError, match="bad: image .* do not match"):
        BatchedEvaluator(engine, 2).evaluate([bad], progress=False)


def test_pool_keeps_each_slots_features(eval_model, real_samples):
    """Writing a slot of the feature pool leaves the other slots untouched (donated in-place update)."""
    engine = eval_model.engine(SIZE)
    ev = BatchedEvaluator(engine, 3)
    group = _Group(3)
    slots = [ev._enter(i, s) for i, s in enumerate(real_samples[:3])]
    for i, slot in enumerate(slots):
        group.pool.put(i, slot.features)
    for i, slot in enumerate(slots):
        np.testing.assert_array_equal(np.asarray(group.pool.tokens[i]), np.asarray(slot.features.tokens))
        for pooled, own in zip(group.pool.skip, slot.features.skip_terms, strict=True):
            np.testing.assert_array_equal(np.asarray(pooled[i]), np.asarray(own))
    assert jax.tree.leaves(group.pool.pos_embed)


def test_predictor_per_dataset_size(eval_model):
    """The unbatched predictor follows the dataset's network size (SPEC 3.8) and the flip/zoom settings."""
    from skipclick_jax.eval.runner import predictor_for
    from skipclick_jax.eval.zoom_in import ZoomInPredictor

    assert isinstance(predictor_for(eval_model, "GrabCut"), ClickSession)
    sizes = {name: predictor_for(eval_model, name).engine.size for name in ("GrabCut", "DAVIS", "HQSeg",
                                                                           "WSESeg_yt_sports", "folder:/x")}
    assert sizes == {"GrabCut": 448, "DAVIS": 672, "HQSeg": 896, "WSESeg_yt_sports": 896, "folder:/x": 448}
    session = predictor_for(eval_model, "DAVIS", mode="fixed224", flip=False)
    assert (session.engine.size, session.engine.flip) == (224, False)
    assert isinstance(predictor_for(eval_model, "SBD", zoom_in=True), ZoomInPredictor)


@pytest.mark.parametrize("batch", [1, 3])
def test_evaluating_more_images_of_a_size_compiles_nothing(eval_model_converted, real_samples, batch,
                                                           compile_counter):
    """Weights loaded from a converted checkpoint: once one image of a size went through, the next images of
    that size compile nothing, batched or in the session loop (`batch` 1)."""
    from skipclick_jax.eval.runner import warm_up_session

    engine = eval_model_converted.engine(SIZE)
    voc = [s for s in real_samples if s.id.startswith("voc/")]  # one image size
    if batch == 1:
        warm_up_session(engine)
        run = lambda samples: _session_results(engine, samples, max_clicks=5)  # noqa: E731
    else:
        evaluator = BatchedEvaluator(engine, batch, max_clicks=5)
        evaluator.warm_up()
        run = lambda samples: evaluator.evaluate(samples, progress=False)  # noqa: E731
    run(voc[:2])
    before = compile_counter[0]
    run(voc[2:])
    assert compile_counter[0] == before


@pytest.mark.parametrize("batch", [1, 3])
def test_empty_ground_truth_is_a_clear_error(eval_model, real_samples, batch):
    engine = eval_model.engine(SIZE)
    empty = EvalSample("voc/empty", real_samples[0].image, np.zeros_like(real_samples[0].gt))
    samples = [real_samples[1], empty]
    with pytest.raises(ValueError, match="voc/empty: the object mask is empty"):
        if batch == 1:
            _session_results(engine, samples, max_clicks=2)
        else:
            BatchedEvaluator(engine, batch, max_clicks=2).evaluate(samples, progress=False)
