"""Training configs: presets vs config files, the paper's recipe, overrides, schedule and optimiser."""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from skipclick_jax.config import SkipClickConfig
from skipclick_jax.train.config import PRESETS, TrainConfig, apply_overrides, load_config, preset
from skipclick_jax.train.data_source import open_source
from skipclick_jax.train.state import learning_rate_schedule, make_optimizer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_every_preset_has_a_config_file_returning_it():
    files = {p.stem for p in CONFIGS.glob("*.py")}
    assert files == set(PRESETS)
    for name in PRESETS:
        module_config = load_config(CONFIGS / f"{name}.py")
        assert module_config == preset(name) == load_config(name)
        assert module_config.name == name
        assert (CONFIGS / f"{name}.py").read_text().startswith('"""')  # the docstring names the paper row


def test_paper_recipe():
    c = load_config(CONFIGS / "skipclick_vitb14_448.py")
    assert c.model == SkipClickConfig.skipclick_vitb14_448()
    assert (c.batch_size, c.num_epochs, c.steps_per_epoch, c.total_steps) == (32, 55, 937, 51535)
    assert (c.learning_rate, c.adam_b1, c.adam_b2, c.adam_eps) == (5e-5, 0.9, 0.999, 1e-8)
    assert (c.lr_milestones, c.lr_decay, c.max_num_next_clicks) == ((50, 55), 0.1, 3)
    assert (c.loss_alpha, c.loss_gamma, c.compute_dtype) == (0.5, 2.0, "float32")
    assert c.data.epoch_len == 30000 and c.data.augment.crop_size == (448, 448)
    assert c.checkpoint_interval == 937  # once per epoch, like last_checkpoint.pth
    # Every configuration trains with the same recipe (only the model differs), except the tiny one.
    for name in PRESETS:
        if not name.startswith("tiny"):
            other = preset(name)
            assert other.model == SkipClickConfig.from_dict(other.model.to_dict())
            assert (other.learning_rate, other.num_epochs, other.batch_size) == (5e-5, 55, 32)
    assert preset("baseline_vitb14_448").model.train_encoder
    assert preset("skipclick_depth6_vitb14_448").model.fusion_depth == 6


def test_schedule_is_multistep_per_epoch():
    c = preset("skipclick_vitb14_448")
    lr = learning_rate_schedule(c)
    spe = c.steps_per_epoch
    assert float(lr(0)) == pytest.approx(5e-5)
    assert float(lr(50 * spe - 1)) == pytest.approx(5e-5)  # last step of epoch 49
    assert float(lr(50 * spe)) == pytest.approx(5e-6)  # epoch 50
    assert float(lr(c.total_steps - 1)) == pytest.approx(5e-6)  # epoch 54: the 55 milestone never fires


def test_adam_matches_torch_update_rule():
    c = preset("tiny")
    tx = make_optimizer(c)
    p = {"w": jnp.array([1.0, -2.0])}
    g = {"w": jnp.array([0.5, 1e-3])}
    s = tx.init(p)
    for _ in range(2):
        u, s = tx.update(g, s, p)
        p = optax.apply_updates(p, u)
    # torch.optim.Adam, constant gradient: m̂ = g, v̂ = g², step = lr·g/(|g| + eps) twice.
    expected = np.array([1.0, -2.0]) - 2 * c.learning_rate * np.array([0.5, 1e-3]) / (np.array([0.5, 1e-3]) + 1e-8)
    np.testing.assert_allclose(np.asarray(p["w"]), expected, rtol=1e-6)


def test_overrides():
    c = apply_overrides(preset("skipclick_vitb14_448"), [
        "batch_size=8", "model.fusion_depth=2", "learning_rate=1e-4", "model.train_encoder=true",
        "lr_milestones=40,50", "model.head_width=none", "compute_dtype=bfloat16",
        "data.sampler.prob_gamma=0.7",
    ])
    assert (c.batch_size, c.model.fusion_depth, c.learning_rate, c.model.train_encoder) == (8, 2, 1e-4, True)
    assert c.lr_milestones == (40, 50) and c.model.head_width is None and c.compute_dtype == "bfloat16"
    assert c.data.sampler.prob_gamma == 0.7
    both = apply_overrides(preset("tiny"), ["model.image_size=56", "data.augment.crop_size=(56, 56)"])
    assert both.model.image_size == 56 and both.data.augment.crop_size == (56, 56)
    for bad, match in [
        ("batch_size", "key=value"), ("nope=1", "unknown config key"), ("model.nope=1", "unknown config key"),
        ("batch_size=eight", "cannot parse"), ("model=3", "group of settings"),
        ("compute_dtype=float16", "cannot parse"), ("model.train_encoder=maybe", "cannot parse"),
        ("model.image_size=56", "crop_size"), ("model.fusion_heads=5", "divisible"),
    ]:
        with pytest.raises(ValueError, match=match):
            apply_overrides(preset("tiny"), [bad])


def test_json_round_trip_and_validation():
    for name in ("intermediate_vitg14_448", "skipclick_dinov3_vitb16_448", "convstack_vitb14_448"):
        c = apply_overrides(preset(name), ["data_source=cocolvis:/data"])
        assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="smaller than batch_size"):
        apply_overrides(preset("tiny"), ["data.epoch_len=4"])
    with pytest.raises(KeyError, match="unknown training preset"):
        load_config("nonexistent")
    with pytest.raises(FileNotFoundError):
        load_config("configs/nonexistent.py")


def test_data_source_specs(cocolvis_root, tmp_path):
    from skipclick_jax.data import CocoJsonSource, CocoLvisSource, FolderSource, synthetic

    assert isinstance(open_source(f"cocolvis:{cocolvis_root}"), CocoLvisSource)
    synthetic.write_folder(tmp_path, num_images=2, seed=0)
    annotations = synthetic.write_coco_json(tmp_path, num_images=2, seed=0, write_images=False)
    assert isinstance(open_source(f"folder:{tmp_path}"), FolderSource)
    assert len(open_source(f"coco-json:{annotations}")) == 2
    assert isinstance(open_source(f"coco-json:{annotations},{tmp_path / 'images'}"), CocoJsonSource)
    from skipclick_jax.data import prepare_tfds

    prepare_tfds({"train": FolderSource(tmp_path)}, tmp_path / "tfds")
    assert len(open_source(f"tfds:{tmp_path / 'tfds'}")) == len(FolderSource(tmp_path))
    for bad in ("cocolvis", "zip:/x", f"cocolvis:{tmp_path}/missing"):
        with pytest.raises((ValueError, FileNotFoundError)):
            open_source(bad)
