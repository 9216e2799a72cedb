"""The train step on the repository's other models: DINOv3 SkipClick (with the original's train-mode RoPE
rescale in the loss pass) and the conv-modulation stack."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from skipclick_jax.model import init_params
from skipclick_jax.train.bench import synthetic_batch
from skipclick_jax.train.config import preset
from skipclick_jax.train.state import batch_sharding, create_train_state, make_mesh, make_optimizer
from skipclick_jax.train.step import make_train_step


@functools.cache
def _first_step(name: str, rope_rescale: bool = True):
    """Metrics of one step from the initial state, run twice (fresh state each time)."""
    config = dataclasses.replace(preset(name), dinov3_train_rope_rescale=rope_rescale)
    mesh, tx = make_mesh(jax.devices()[:1]), make_optimizer(config)
    params = init_params(config.model, 0)
    step = make_train_step(config, mesh, tx, create_train_state(config, params, mesh, tx))
    batch = jax.device_put(synthetic_batch(config), batch_sharding(mesh))
    runs = []
    for _ in range(2):
        state, metrics = step(create_train_state(config, params, mesh, tx), batch)
        runs.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return runs, state


def test_dinov3_loss_pass_sees_the_rescaled_encoder():
    """Same step, same key: with the original's train-mode RoPE rescale the loss pass sees other encoder
    features; the factors come from the step's key (the same step twice gives the same result) and the number
    of simulated clicks is drawn from the same key either way."""
    (with_rescale, again), state = _first_step("tiny_dinov3", True)
    (without, _), _ = _first_step("tiny_dinov3", False)
    assert with_rescale == again and np.isfinite(with_rescale["loss"]) and "encoder" not in state.params
    assert with_rescale["num_clicks"] == without["num_clicks"]
    assert with_rescale["loss"] != without["loss"] and with_rescale["grad_norm"] != without["grad_norm"]


def test_cli_trains_dinov3_from_hub_weights_with_the_conv_stack(cocolvis_root, tmp_path):
    """`skipclick train --config tiny_dinov3 --encoder-weights <DINOv3 hub .pth>`: the encoder starts from
    the file (buffers included), stays frozen, and the export loads. The fusion stack is switched to the conv
    modulation stack (`--set model.fusion_block=conv`), so one compiled step trains both new parts."""
    import argparse
    import json

    from skipclick_jax import load_checkpoint
    from skipclick_jax.train import command
    from tests.torch_reference import ReferenceDinoV3, randomize_, save_dinov3_hub_checkpoint

    hub = randomize_(ReferenceDinoV3(embed_dim=48, depth=4, num_heads=4), seed=3).eval()
    save_dinov3_hub_checkpoint(hub, tmp_path / "tiny_dinov3_hub.pth")
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--config", "tiny_dinov3", "--workdir", str(tmp_path / "run"), "--data",
                              f"cocolvis:{cocolvis_root}", "--encoder-weights", str(tmp_path / "tiny_dinov3_hub.pth"),
                              "--max-steps", "2", "--no-progress", "--compilation-cache", "none",
                              "--set", "model.fusion_block=conv"])
    assert args.run(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in rows)
    model, params = load_checkpoint(tmp_path / "run" / "export")
    assert model.config.encoder.family == "dinov3" and model.config.fusion_block == "conv"
    state = {k: v.numpy() for k, v in hub.state_dict().items()}
    np.testing.assert_array_equal(params["encoder"]["rope_periods"], state["rope_embed.periods"])
    np.testing.assert_array_equal(params["encoder"]["blocks_1"]["attn"]["qkv"]["kernel"],
                                  state["blocks.1.attn.qkv.weight"].T)  # frozen: still the hub weights
