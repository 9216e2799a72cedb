"""DINOv3 torch.hub checkpoints (`dinov3_vit*16*_pretrain_lvd1689m-*.pth`) ↔ the `DinoV3` module.

The two buffers of the original travel as parameters: `rope_embed.periods` (the RoPE periods, stored in the
released files rounded to bfloat16) and each block's `attn.qkv.bias_mask` (zeroes the k bias).
"""

from __future__ import annotations

from ...config import DinoV3Config
from . import Entry, linear, norm


def _block(tp: str, fp: tuple[str, ...], config: DinoV3Config) -> list[Entry]:
    attn = linear(f"{tp}.attn.qkv", (*fp, "attn", "qkv")) if config.qkv_bias else [
        Entry(f"{tp}.attn.qkv.weight", (*fp, "attn", "qkv", "kernel"), "linear")]
    if config.qkv_bias:
        attn.append(Entry(f"{tp}.attn.qkv.bias_mask", (*fp, "attn", "qkv", "bias_mask")))
    attn += linear(f"{tp}.attn.proj", (*fp, "attn", "proj"))
    names = ("w1", "w2", "w3") if config.ffn == "swiglu" else ("fc1", "fc2")
    mlp = [e for name in names for e in linear(f"{tp}.mlp.{name}", (*fp, "mlp", name))]
    return (norm(f"{tp}.norm1", (*fp, "norm1")) + attn + [Entry(f"{tp}.ls1.gamma", (*fp, "ls1"))]
            + norm(f"{tp}.norm2", (*fp, "norm2")) + mlp + [Entry(f"{tp}.ls2.gamma", (*fp, "ls2"))])


def dinov3_entries(config: DinoV3Config, torch_prefix: str = "", flax_path: tuple[str, ...] = ()) -> list[Entry]:
    """The hub layout (`cls_token`, `storage_tokens`, `rope_embed.periods`, `blocks.{i}.…`, `norm.…`)."""
    tp = torch_prefix
    entries = [Entry(f"{tp}{name}", (*flax_path, name)) for name in ("cls_token", "storage_tokens", "mask_token")]
    entries += linear(f"{tp}patch_embed.proj", (*flax_path, "patch_embed"), "conv")
    entries.append(Entry(f"{tp}rope_embed.periods", (*flax_path, "rope_periods")))
    for i in range(config.depth):
        entries += _block(f"{tp}blocks.{i}", (*flax_path, f"blocks_{i}"), config)
    entries += norm(f"{tp}norm", (*flax_path, "norm"))
    if config.local_cls_norm:
        entries += norm(f"{tp}local_cls_norm", (*flax_path, "local_cls_norm"))
    return entries
