"""Several training processes (one per host, or several on one machine): start-up, barriers, fail-fast.

A run of N processes is N copies of the same command with a coordinator address and a process id
(`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`, or what SLURM / Open MPI set). What can
go wrong between processes, and what this module does about it:

- A process that reaches the first collective much later than the others (process 0 loads the train step
  from the persistent compilation cache, the others compile it: the cache key differs per process on CPU
  and only process 0 writes entries) makes the early ones give up after gloo's fixed 30 s context timeout.
  `barrier` (the coordination service's barrier, not a collective) lines them up after compilation.
- A process that dies leaves the others blocked in a collective that never completes. `Watchdog` ends a
  process whose step makes no progress for `timeout_s` seconds with a clear message, and the
  coordination service's heartbeat (`SKIPCLICK_HEARTBEAT_TIMEOUT_S`, default 60 s) ends any process
  whose peer stopped answering, whatever it is doing. Rerunning the same command resumes.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import jax

# Exit status of a process ended by the watchdog (distinct from the CLI's other codes).
EXIT_STALLED = 4
HEARTBEAT_ENV = "SKIPCLICK_HEARTBEAT_TIMEOUT_S"
SHUTDOWN_ENV = "SKIPCLICK_SHUTDOWN_TIMEOUT_S"


def maybe_initialize_distributed() -> None:
    """`jax.distributed.initialize()` when launched as one of several processes; must run before JAX
    touches a device. Explicit: JAX_COORDINATOR_ADDRESS (+ JAX_NUM_PROCESSES, JAX_PROCESS_ID); otherwise
    JAX's cluster auto-detection (SLURM, Open MPI, Kubernetes, TPU pods) when SLURM/MPI report > 1 task.

    Heartbeat and shutdown timeouts come from SKIPCLICK_HEARTBEAT_TIMEOUT_S (default 60) and
    SKIPCLICK_SHUTDOWN_TIMEOUT_S (default 120): a dead peer ends the others within the heartbeat timeout.
    """
    env = os.environ
    explicit = "JAX_COORDINATOR_ADDRESS" in env
    multi = explicit or int(env.get("SLURM_NTASKS", "1")) > 1 or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    if not multi or jax.distributed.is_initialized():
        return
    kwargs = {}
    if explicit and "JAX_NUM_PROCESSES" in env and "JAX_PROCESS_ID" in env:
        kwargs = {"num_processes": int(env["JAX_NUM_PROCESSES"]), "process_id": int(env["JAX_PROCESS_ID"])}
    jax.distributed.initialize(
        heartbeat_timeout_seconds=_positive_int_env(HEARTBEAT_ENV, 60),
        shutdown_timeout_seconds=_positive_int_env(SHUTDOWN_ENV, 120),
        **kwargs,
    )


def _positive_int_env(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={text!r}: expected a positive number of seconds")
    return value


def barrier(name: str, timeout_s: float) -> None:
    """Wait until every process reaches `name` (no-op with one process). Uses the coordination service,
    so it tolerates any skew up to `timeout_s`, unlike a collective's 30 s gloo set-up on CPU."""
    if jax.process_count() == 1:
        return
    from orbax.checkpoint import multihost

    # Explicit `processes`: orbax then uses the distributed runtime's barrier, not a device collective.
    multihost.sync_global_processes(name, timeout=int(timeout_s), processes=set(range(jax.process_count())))


class Watchdog:
    """Ends this process when a step makes no progress for `timeout_s` seconds (0 = off).

    The loop calls `beat()` after every finished step; phases that may legitimately take long
    (checkpointing, evaluation) run inside `paused()`. A process stuck in a collective whose peer died
    cannot be interrupted from Python, so the watchdog prints why and exits the process (`os._exit`).
    """

    def __init__(self, timeout_s: float, describe: str = "") -> None:
        self.timeout_s = float(timeout_s)
        self._describe = describe
        self._last = time.monotonic()
        self._paused = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Watchdog:
        if self.timeout_s > 0:
            self._last = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="skipclick-watchdog", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def beat(self) -> None:
        self._last = time.monotonic()

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1
            self._last = time.monotonic()

    def _run(self) -> None:
        period = min(1.0, self.timeout_s / 4)
        while not self._stop.wait(period):
            idle = time.monotonic() - self._last
            if not self._paused and idle > self.timeout_s:
                print(
                    f"skipclick train: process {jax.process_index()} of {jax.process_count()} made no progress "
                    f"for {idle:.0f} s (step watchdog, {self.timeout_s:g} s{self._describe}); another process has "
                    "probably died or hangs, so this one stops instead of waiting in a collective forever. "
                    "Rerun the same command on every process to resume from the last checkpoint.",
                    file=sys.stderr, flush=True,
                )
                os._exit(EXIT_STALLED)
