"""Convert an original SkipClick or DINOv2 hub checkpoint (thin wrapper of `skipclick convert`).

    python convert/convert_checkpoint.py cocolvis_skipclick.pth converted/skipclick
    python convert/convert_checkpoint.py dinov2_vitb14_reg4_pretrain.pth converted/dinov2_vitb14_reg
"""

import sys

from skipclick_jax.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
