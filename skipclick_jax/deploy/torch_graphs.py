"""The two PyTorch modules traced into `encoder.onnx` and `click.onnx` (needs the `onnx` extra: torch).

Both wrap the package's `TorchSkipClick` (same weights, same split as the Flax `encode` / `decode`) at one
fixed network size S. Everything that depends on S only — DINOv2's resized position embedding, DINOv3's
RoPE tables, the fusion stack's resized position embedding — is computed once here and stored as a
constant, so the graphs carry no bicubic resize whose ONNX Runtime kernel could round differently.
Layout NCHW: image (B, 3, S, S), tokens (B, g·g, D), FPN image terms (B, C, h, w), masks (B, 1, S, S).
"""

from __future__ import annotations

import numpy as np
import torch
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


class EncoderGraph(nn.Module):
    """image (B, 3, S, S) in [0, 1] → (tokens, skip0..skip3) (the skips only with skip connections)."""

    def __init__(self, model: nn.Module, size: int):
        super().__init__()
        self.model, self.grid = model, size // model.config.patch_size

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        taps = self.model.taps(image)
        tokens = self.model.fuse(torch.cat(taps, dim=-1)) if self.model.config.fuse_taps else taps[0]
        if not self.model.config.skip_connections:
            return (tokens,)
        maps = [t.transpose(1, 2).reshape(t.shape[0], -1, self.grid, self.grid) for t in taps]
        return (tokens, *self.model.neck.image_terms(maps))


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
