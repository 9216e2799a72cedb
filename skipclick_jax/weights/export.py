"""`skipclick export CKPT OUT`: weights to the original PyTorch format, safetensors, HF or Orbax.

    skipclick export run/ckpt skipclick.pth                       original {'state_dict','config'} .pth
    skipclick export run/ckpt skipclick.safetensors               original key names, config in metadata
    skipclick export run/ckpt dinov2.pth --encoder-only           the encoder as a hub .pth (plain state dict)
    skipclick export run/ckpt dinov2.safetensors --encoder-only [--hf-names]
    skipclick export run/ckpt hf_dir --encoder-only --hf-names    HF directory (config.json + model.safetensors)

(`--dinov2-only` is the older name of `--encoder-only`; DINOv3 encoders export the same way.)
    skipclick export model.safetensors converted_dir              any source → Orbax directory
    skipclick export run/ckpt deploy_dir --format onnx [--size S] encoder.onnx + click.onnx + metadata.json
    skipclick export run/ckpt deploy_dir --format stablehlo       jax.export-serialized encode and click

The format follows OUT's suffix (.pth/.pt → pth, .safetensors → safetensors, none → Orbax directory, or a
Hugging Face directory with --hf-names) unless --format says it. Outputs are written atomically.
The deployable formats (onnx, stablehlo: `skipclick_jax.deploy`) are fixed at one network size S.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from ..config import Encoder, SkipClickConfig
from .errors import CheckpointError
from .hf_dir import save_hf_dir
from .load import Weights, load_weights
from .orbax import save_encoder, save_params
from .pth import save_encoder_pth, save_original_pth
from .safetensors import save_encoder_safetensors, save_skipclick_safetensors

DEPLOY_FORMATS = ("onnx", "stablehlo")
FORMATS = ("pth", "safetensors", "orbax", *DEPLOY_FORMATS)
_SUFFIXES = {".pth": "pth", ".pt": "pth", ".safetensors": "safetensors", "": "orbax"}


@dataclass(frozen=True)
class ExportReport:
    kind: str  # "skipclick", "dinov2" or "dinov3"
    fmt: str  # "pth", "safetensors", "orbax" or "hf"
    hf_names: bool
    config: SkipClickConfig | Encoder
    num_params: int
    out: Path
    sharded: bool
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        names = " (Hugging Face names)" if self.hf_names else ""
        lines = [f"exported a {self.kind} model: {self.num_params:,} parameters → {self.out} [{self.fmt}{names}]"]
        if self.sharded:
            lines.append("  parameters were sharded across devices; gathered one tensor at a time")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def output_format(out: str | Path, fmt: str | None, hf_names: bool) -> str:
    """The output format: `fmt` if given, else from OUT's suffix; 'hf' for a directory with HF names."""
    if fmt is None:
        suffix = Path(out).suffix
        if suffix not in _SUFFIXES:
            raise CheckpointError(f"{out}: cannot tell the output format from the suffix {suffix!r}; use .pth, "
                                  ".safetensors, no suffix (a directory), or pass --format {pth,safetensors,orbax}")
        fmt = _SUFFIXES[suffix]
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if hf_names:
        if fmt in DEPLOY_FORMATS:
            raise CheckpointError(f"--hf-names names weights; --format {fmt} writes a whole SkipClick model")
        if fmt == "pth":
            raise CheckpointError("--hf-names writes safetensors (a .safetensors file or a Hugging Face directory)")
        return "hf" if fmt == "orbax" else fmt
    return fmt


def write_weights(
    weights: Weights, out: str | Path, fmt: str, *, hf_names: bool = False, overwrite: bool = False
) -> None:
    """Write loaded weights in `fmt` ('pth', 'safetensors', 'orbax', 'hf')."""
    cfg, params, name = weights.config, weights.params, weights.encoder_name
    if weights.kind == "skipclick":
        if hf_names:
            raise CheckpointError("Hugging Face names exist for the DINOv2 encoder only; add --dinov2-only "
                                  "(--encoder-only)")
        writer = {"pth": save_original_pth, "safetensors": save_skipclick_safetensors, "orbax": save_params}[fmt]
        writer(out, cfg, params, overwrite=overwrite)
    elif fmt == "pth":
        save_encoder_pth(out, cfg, params, overwrite=overwrite)
    elif fmt == "safetensors":
        save_encoder_safetensors(out, cfg, params, hf_names=hf_names, name=name, overwrite=overwrite)
    elif fmt == "hf":
        save_hf_dir(out, cfg, params, name=name, overwrite=overwrite)
    else:
        save_encoder(out, cfg, params, overwrite=overwrite, metadata={"encoder_name": name} if name else None)


def write_deployable(weights: Weights, out: str | Path, fmt: str, *, size: int | None = None,
                     overwrite: bool = False) -> None:
    """Write a SkipClick model as an ONNX pair or as jax.export functions at network size `size`."""
    if fmt == "onnx":
        from ..deploy.to_onnx import export_onnx

        export_onnx(weights.config, weights.params, out, size=size, overwrite=overwrite)
    else:
        from ..deploy.stablehlo import export_stablehlo
        from ..model.skipclick import SkipClick

        export_stablehlo(SkipClick(weights.config), weights.params, out, size=size, overwrite=overwrite)


def export_checkpoint(
    src: str | Path,
    out: str | Path,
    *,
    dinov2_only: bool = False,
    fmt: str | None = None,
    hf_names: bool = False,
    overwrite: bool = False,
    hf_config: Any = None,
    encoder_name: str | None = None,
    size: int | None = None,
) -> ExportReport:
    """Load `src` (any format `load_weights` reads) and write it to `out` (see the module docstring).

    `size`: the network input side of the deployable formats (default: the training size)."""
    out_fmt = output_format(out, fmt, hf_names)
    if out_fmt in DEPLOY_FORMATS and dinov2_only:
        raise CheckpointError(f"--format {out_fmt} exports a whole SkipClick model, not --encoder-only")
    if size is not None and out_fmt not in DEPLOY_FORMATS:
        raise CheckpointError(f"--size applies to --format {' / '.join(DEPLOY_FORMATS)} only")
    if hf_names and not dinov2_only:
        raise CheckpointError("Hugging Face names exist for the DINOv2 encoder only; add --dinov2-only "
                              "(--encoder-only)")
    if Path(out).exists() and not overwrite:  # fail before the (possibly long) load
        raise FileExistsError(f"{Path(out).absolute()} already exists (pass --overwrite to replace it)")
    weights = load_weights(src, hf_config=hf_config, encoder_name=encoder_name)
    if dinov2_only:
        weights = weights.encoder()
    elif weights.kind != "skipclick":
        family = {"dinov2": "DINOv2", "dinov3": "DINOv3"}[weights.kind]
        raise CheckpointError(f"{src}: holds a {family} encoder only; pass --dinov2-only (--encoder-only) to "
                              "export it")
    if out_fmt in DEPLOY_FORMATS:  # the tracing libraries' own warnings are not findings about the weights
        write_deployable(weights, out, out_fmt, size=size, overwrite=overwrite)
        caught = []
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            write_weights(weights, out, out_fmt, hf_names=hf_names, overwrite=overwrite)
    count = int(sum(x.size for x in jax.tree.leaves(weights.params)))
    sharded = any(isinstance(x, jax.Array) and len(x.sharding.device_set) > 1 for x in jax.tree.leaves(weights.params))
    return ExportReport(weights.kind, out_fmt, hf_names, weights.config, count, Path(out), sharded,
                        tuple(str(w.message) for w in caught))


def register(subparsers) -> None:
    """`skipclick export CKPT OUT [--dinov2-only] [--format F] [--hf-names] [--hf-config J] [--encoder N]
    [--size S] [--overwrite]`."""
    p = subparsers.add_parser(
        "export", help="weights → original PyTorch .pth, safetensors (original/hub/HF names), Orbax, ONNX or StableHLO",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("ckpt", help="checkpoint directory, original/hub .pth, .safetensors, or Hugging Face directory")
    p.add_argument("out", help="output file or directory (written atomically)")
    p.add_argument("--encoder-only", "--dinov2-only", dest="dinov2_only", action="store_true",
                   help="export only the encoder (DINOv2 or DINOv3)")
    p.add_argument("--format", choices=FORMATS, default=None, help="output format (default: from OUT's suffix)")
    p.add_argument("--hf-names", action="store_true",
                   help="encoder in Hugging Face key names (Dinov2WithRegisters / DINOv3ViT; safetensors only)")
    p.add_argument("--hf-config", default=None, help="config.json for Hugging Face weights without one beside them")
    p.add_argument("--encoder", default=None, help="DINOv2 hub name when a hub file's name does not say it")
    p.add_argument("--size", type=int, default=None,
                   help="network input side S of --format onnx / stablehlo (default: the training size)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(run=_run)


def _run(args) -> int:
    report = export_checkpoint(args.ckpt, args.out, dinov2_only=args.dinov2_only, fmt=args.format,
                               hf_names=args.hf_names, overwrite=args.overwrite, hf_config=args.hf_config,
                               encoder_name=args.encoder, size=args.size)
    print(report.summary())
    return 0
