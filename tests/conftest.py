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


@pytest.fixture(scope="session", autouse=True)
def shared_compilation_cache(tmp_path_factory):
    """One persistent XLA cache for the whole run (shared by pytest-xdist workers and subprocesses): the same
    small models are compiled by many tests through fresh jit wrappers; later ones load the executable."""
    from jax.experimental.compilation_cache import compilation_cache

    directory = tmp_path_factory.getbasetemp().parent / "xla_cache"
    directory.mkdir(exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    compilation_cache.reset_cache()  # the cache is set up at the first compilation; make it look again
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(directory)  # subprocesses (CLI runs) share it
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    return directory


@pytest.fixture()
def compile_counter():
    """Counts the executables a test needed (a list holding one int): XLA compilations and loads from the
    persistent cache alike (a cache hit stands for a compilation an earlier test already paid for)."""
    count = [0]

    def on_duration(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    def on_event(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    yield count
    jax.monitoring.unregister_event_duration_listener(on_duration)
    jax.monitoring.unregister_event_listener(on_event)


# Folders whose tests take tens of seconds to minutes each (compiling train steps, subprocess runs, ONNX
# export). pytest-xdist hands tests out in collection order; starting these first keeps one worker from
# ending the run alone on a two-minute test while the other idles.
HEAVY_FIRST = ("tests/train/", "tests/deploy/")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.nodeid.startswith(HEAVY_FIRST))  # stable: order kept otherwise
