"""Test-wide settings.

Eight simulated CPU devices so the sharded training tests run on a laptop-sized machine, and the float32
parity precision the project promises ("highest" matmul precision, no TF32-style shortcuts).
"""

import os

# Must happen before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
