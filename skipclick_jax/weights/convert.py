"""`skipclick convert`: an original SkipClick or DINOv2 hub `.pth` → an Orbax checkpoint + JSON config."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Encoder, SkipClickConfig
from .errors import CheckpointError
from .orbax import save_encoder, save_params
from .pth import encoder_from_hub_state, read_pth, skipclick_from_state, state_dict_of
from .tables.skipclick import UNUSED_BY_FORWARD, encoder_prefix


@dataclass(frozen=True)
class ConversionReport:
    kind: str  # "skipclick", "dinov2" or "dinov3"
    config: SkipClickConfig | Encoder
    num_params: int
    out_dir: Path

    def summary(self) -> str:
        lines = [f"converted a {self.kind} checkpoint: {self.num_params:,} parameters → {self.out_dir}"]
        if isinstance(self.config, SkipClickConfig):
            c = self.config
            lines.append(
                f"  encoder {c.encoder_name} ({c.encoder.depth} blocks, {c.encoder.embed_dim} wide, "
                f"{c.encoder.num_registers} registers), taps {list(c.taps)}, fuse_taps={c.fuse_taps}, "
                f"skip_connections={c.skip_connections}, fusion depth {c.fusion_depth}, "
                f"training size {c.image_size}, upsample {c.upsample}"
            )
            lines.append("  carried but unused by the forward (kept so the export back is exact):")
            lines += [f"    {k}: {v}" for k, v in UNUSED_BY_FORWARD.items()]
        else:
            lines.append(f"  {self.config}")
        return "\n".join(lines)


def convert_file(
    src: str | Path,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    config: SkipClickConfig | None = None,
    encoder_name: str | None = None,
) -> ConversionReport:
    """Convert `src` (SkipClick `{'state_dict','config'}` or DINOv2 hub state dict) into `out_dir`.

    Every key is mapped strictly; on any error nothing is written.
    """
    src = Path(src)
    state, stored = state_dict_of(read_pth(src), src)
    meta = {"source": str(src.absolute())}
    if encoder_prefix(state) is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            config, params = skipclick_from_state(state, stored, src, config)
        save_params(out_dir, config, params, overwrite=overwrite, metadata=meta)
        kind = "skipclick"
    elif "cls_token" in state:
        config, params = encoder_from_hub_state(state, src, encoder_name)
        save_encoder(out_dir, config, params, overwrite=overwrite, metadata=meta)
        kind = config.family
    else:
        sample = ", ".join(list(state)[:5])
        raise CheckpointError(f"{src}: neither a SkipClick nor a DINOv2 / DINOv3 checkpoint (keys: {sample}, …)")
    count = int(sum(np.size(v) for v in state.values()))
    return ConversionReport(kind, config, count, Path(out_dir))


def register(subparsers) -> None:
    """`skipclick convert SRC OUT [--overwrite] [--encoder NAME]`."""
    p = subparsers.add_parser("convert", help="original SkipClick / DINOv2 hub .pth → Orbax checkpoint + JSON config")
    p.add_argument("src", help="SkipClick checkpoint ({'state_dict','config'}), or a DINOv2 / DINOv3 hub .pth "
                              "(dinov2_vit*14*_pretrain.pth, dinov3_vit*16*_pretrain_*.pth)")
    p.add_argument("out", help="output directory (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--encoder", default=None,
                   help="hub name (e.g. dinov2_vitb14_reg, dinov3_vitb16) when the file name does not say it")
    p.set_defaults(run=_run)


def _run(args) -> int:
    report = convert_file(args.src, args.out, overwrite=args.overwrite, encoder_name=args.encoder)
    print(report.summary())
    return 0
