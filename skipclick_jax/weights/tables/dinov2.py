"""DINOv2 torch.hub checkpoints (`dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth`) ↔ the `DinoV2` module."""

from __future__ import annotations

from ...config import DinoV2Config
from . import Entry, linear, norm, transformer_block


def dinov2_entries(config: DinoV2Config, torch_prefix: str = "", flax_path: tuple[str, ...] = ()) -> list[Entry]:
    """The hub layout (`cls_token`, `blocks.{i}.…`, `norm.…`), under optional key / path prefixes."""
    tp = torch_prefix
    entries = [
        Entry(f"{tp}cls_token", (*flax_path, "cls_token")),
        Entry(f"{tp}pos_embed", (*flax_path, "pos_embed")),
    ]
    if config.num_registers:
        entries.append(Entry(f"{tp}register_tokens", (*flax_path, "register_tokens")))
    entries.append(Entry(f"{tp}mask_token", (*flax_path, "mask_token")))
    entries += linear(f"{tp}patch_embed.proj", (*flax_path, "patch_embed"), "conv")
    for i in range(config.depth):
        entries += transformer_block(f"{tp}blocks.{i}", (*flax_path, f"blocks_{i}"), config.ffn, config.layerscale)
    entries += norm(f"{tp}norm", (*flax_path, "norm"))
    return entries
