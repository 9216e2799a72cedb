"""SkipClick interactive segmentation in JAX/Flax."""
