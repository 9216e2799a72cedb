"""The two PyTorch modules traced into `encoder.onnx` and `click.onnx` (needs the `onnx` extra: torch).

Both wrap the package's `TorchSkipClick` (same weights, same split as the Flax `encode` / `decode`) at one
fixed network size S. Everything that depends on S only — DINOv2's resized position embedding, DINOv3's
RoPE tables, the fusion stack's resized position embedding — is computed once here and stored as a
constant, so the graphs carry no bicubic resize whose ONNX Runtime kernel could round differently.
Layout NCHW: image (B, 3, S, S), tokens (B, g·g, D), FPN image terms (B, C, h, w), masks (B, 1, S, S).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def freeze_size_constants(model: nn.Module, size: int) -> None:
    """Replace the encoder's size-dependent tables by their values at S (the graphs are fixed at S)."""
    encoder = model.feature_extractor.encoder
    grid = size // model.config.patch_size
    with torch.no_grad():
        if hasattr(encoder, "position_embedding"):  # DINOv2: bicubic-resized table
            table = encoder.position_embedding(grid, grid).detach().clone()
            encoder.position_embedding = lambda gh, gw: table
        if hasattr(encoder, "rope"):  # DINOv3: sin / cos tables
            sin, cos = (t.detach().clone() for t in encoder.rope(grid, grid))
            encoder.rope = lambda gh, gw: (sin, cos)


def first_layers(model: nn.Module) -> list[nn.Module]:
    """The FPN branches' first layers, whose input is [fusion output (D channels), tap (D channels)]."""
    neck = model.neck
    return [neck.down_4[0], neck.down_8[0], neck.down_16[0], neck.down_32[0]]


def input_half(layer: nn.Module, half: slice) -> torch.Tensor:
    """The first layer's weight for the input channels `half` (ConvTranspose2d keeps inputs on axis 0)."""
    w = layer.weight.detach()
    return (w[half] if isinstance(layer, nn.ConvTranspose2d) else w[:, half]).clone()


class EncoderGraph(nn.Module):
    """image (B, 3, S, S) in [0, 1] → (tokens, skip0..skip3) (the skips only with skip connections).

    The skips are the tap halves of the FPN first layers (bias included); only those weight halves are
    stored, not the whole layers (which would hold the click halves twice over the pair).
    """

    def __init__(self, model: nn.Module, size: int):
        super().__init__()
        self.model, self.grid = model, size // model.config.patch_size
        self.layers = first_layers(model) if model.config.skip_connections else []
        image_half = slice(model.config.dim, 2 * model.config.dim)
        for k, layer in enumerate(self.layers):
            self.register_buffer(f"image_weight{k}", input_half(layer, image_half))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        taps = self.model.taps(image)
        tokens = self.model.fuse(torch.cat(taps, dim=-1)) if self.model.config.fuse_taps else taps[0]
        terms = []
        for k, (layer, tap) in enumerate(zip(self.layers, taps, strict=False)):
            x = tap.transpose(1, 2).reshape(tap.shape[0], -1, self.grid, self.grid)
            w = getattr(self, f"image_weight{k}")
            if isinstance(layer, nn.ConvTranspose2d):
                terms.append(F.conv_transpose2d(x, w, layer.bias, stride=layer.stride))
            else:
                terms.append(F.conv2d(x, w, layer.bias, stride=layer.stride))
        return (tokens, *terms)


def click_model(model: nn.Module) -> nn.Module:
    """A copy of `model` whose FPN first layers hold their click halves only: with the image terms given,
    the model only ever reads input channels 0..D−1 of them, so the graph need not store the rest."""
    clone = copy.deepcopy(model)
    if clone.config.skip_connections:
        for layer in first_layers(clone):
            layer.weight = nn.Parameter(input_half(layer, slice(0, clone.config.dim)), requires_grad=False)
    return clone


class ClickGraph(nn.Module):
    """(tokens, prev_mask, float64 points) → (logits, probabilities), (B, 1, S, S) each: no skip connections.

    `pos_embed` is the fusion stack's position embedding at S (None for the conv stack), taken from the
    Flax model so both runtimes add the very same table.
    """

    def __init__(self, model: nn.Module, size: int, pos_embed: np.ndarray | None):
        super().__init__()
        self.model, self.grid = model, size // model.config.patch_size
        self.register_buffer("pos_embed", None if pos_embed is None else torch.from_numpy(np.array(pos_embed)))

    def logits(self, tokens: torch.Tensor, terms: list[torch.Tensor] | None, prev_mask: torch.Tensor,
               points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = {"tokens": tokens, "terms": terms, "grid": (self.grid, self.grid), "pos_embed": self.pos_embed}
        logits = self.model.decode(features, prev_mask, points)
        return logits, torch.sigmoid(logits)

    def forward(self, tokens: torch.Tensor, prev_mask: torch.Tensor,
                points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.logits(tokens, None, prev_mask, points)


class SkipClickGraph(ClickGraph):
    """`ClickGraph` with the FPN image terms: (tokens, skip0..skip3, prev_mask, points)."""

    def forward(self, tokens: torch.Tensor, skip0: torch.Tensor, skip1: torch.Tensor, skip2: torch.Tensor,
                skip3: torch.Tensor, prev_mask: torch.Tensor,
                points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.logits(tokens, [skip0, skip1, skip2, skip3], prev_mask, points)
