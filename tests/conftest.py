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


import pytest  # noqa: E402


@pytest.fixture()
def compile_counter():
    """Counts XLA backend compilations while the test runs (a list holding one int)."""
    count = [0]

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield count
    jax.monitoring.unregister_event_duration_listener(listener)
