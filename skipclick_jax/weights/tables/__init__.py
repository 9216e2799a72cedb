"""Key tables between PyTorch state dicts and Flax parameter trees, one module per model family.

Each `Entry` names a PyTorch key, the Flax path of the same tensor and the layout transform between them.
Transforms are exact permutations (no arithmetic), and every entry serves both directions (`to_flax`,
`to_torch`), so conversions are bit-exact either way. `weights.mapping` applies a table with full checking.

| module       | layout                                                                  |
|--------------|-------------------------------------------------------------------------|
| `dinov2`     | DINOv2 torch.hub checkpoints (`cls_token`, `blocks.{i}.…`) ↔ `DinoV2`     |
| `skipclick`  | the original SkipClick `FeatureVitModel` state dict ↔ `SkipClick`        |
| `dinov2_hf`  | Hugging Face `Dinov2[WithRegisters]Model` names ↔ the DINOv2 hub names   |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name: (torch → flax, flax → torch)
TRANSFORMS = {
    "copy": (lambda a: a, lambda a: a),
    # nn.Linear weight (out, in) ↔ Dense kernel (in, out)
    "linear": (lambda a: a.T, lambda a: a.T),
    # Conv2d weight (out, in, kh, kw) ↔ (kh, kw, in, out)
    "conv": (lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1)),
    # ConvTranspose2d weight (in, out, kh, kw) ↔ (kh, kw, in, out)
    "deconv": (lambda a: a.transpose(2, 3, 0, 1), lambda a: a.transpose(2, 3, 0, 1)),
    # 1×1 Conv2d weight (out, in, 1, 1) ↔ Dense kernel (in, out)
    "conv1x1": (lambda a: a[:, :, 0, 0].T, lambda a: a.T[:, :, None, None]),
}


@dataclass(frozen=True)
class Entry:
    """One tensor: PyTorch key ↔ Flax path, with the layout transform between them."""

    torch_key: str
    flax_path: tuple[str, ...]
    transform: str = "copy"

    def to_flax(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(TRANSFORMS[self.transform][0](array))

    def to_torch(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(TRANSFORMS[self.transform][1](array))

    def torch_shape(self, flax_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The PyTorch shape of a Flax parameter of `flax_shape` (the transform on a zero-byte view)."""
        view = np.broadcast_to(np.empty((), np.uint8), flax_shape)
        return tuple(TRANSFORMS[self.transform][1](view).shape)


def linear(torch_prefix: str, flax_path: tuple[str, ...], kind: str = "linear") -> list[Entry]:
    """`<prefix>.weight` / `.bias` ↔ `kernel` / `bias` (a Linear, or a conv with `kind`)."""
    return [Entry(f"{torch_prefix}.weight", (*flax_path, "kernel"), kind),
            Entry(f"{torch_prefix}.bias", (*flax_path, "bias"))]


def norm(torch_prefix: str, flax_path: tuple[str, ...]) -> list[Entry]:
    """`<prefix>.weight` / `.bias` ↔ `scale` / `bias` (LayerNorm, GroupNorm)."""
    return [Entry(f"{torch_prefix}.weight", (*flax_path, "scale")),
            Entry(f"{torch_prefix}.bias", (*flax_path, "bias"))]


def transformer_block(tp: str, fp: tuple[str, ...], ffn: str, layerscale: bool) -> list[Entry]:
    """One transformer block, in the original's state-dict order (DINOv2 and EncoderStack differ)."""
    names = ("w12", "w3") if ffn == "swiglu" else ("fc1", "fc2")
    attn = linear(f"{tp}.attn.qkv", (*fp, "attn", "qkv")) + linear(f"{tp}.attn.proj", (*fp, "attn", "proj"))
    mlp = [e for name in names for e in linear(f"{tp}.mlp.{name}", (*fp, "mlp", name))]
    norm1, norm2 = norm(f"{tp}.norm1", (*fp, "norm1")), norm(f"{tp}.norm2", (*fp, "norm2"))
    if layerscale:  # DINOv2 block: norm1, attn, ls1, norm2, mlp, ls2
        return (norm1 + attn + [Entry(f"{tp}.ls1.gamma", (*fp, "ls1"))] + norm2 + mlp
                + [Entry(f"{tp}.ls2.gamma", (*fp, "ls2"))])
    return norm1 + norm2 + attn + mlp  # EncoderStack block registers both norms first
