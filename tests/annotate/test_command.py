"""`skipclick annotate` as a command: arguments, the random-weights banner, serving, clean shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import write_images

REPO = Path(__file__).resolve().parents[2]
# Runs the command module directly: it does not depend on the CLI's list of command modules.
LAUNCH = """
import argparse, sys
from skipclick_jax.annotate import command
parser = argparse.ArgumentParser(prog="skipclick")
command.register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.run(args))
"""


def test_registered_in_the_cli_when_wired():
    from skipclick_jax import cli

    if "skipclick_jax.annotate.command" not in cli.COMMAND_MODULES:
        pytest.skip("cli.COMMAND_MODULES does not list skipclick_jax.annotate.command yet")
    args = cli.build_parser().parse_args(["annotate", "imgs", "--out", "masks"])
    assert args.command == "annotate" and args.host == "127.0.0.1"


def test_serves_says_random_weights_and_stops_on_sigterm(tmp_path):
    write_images(tmp_path / "images")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, "-c", LAUNCH, "annotate", str(tmp_path / "images"), "--out", str(tmp_path / "masks"),
           "--preset", "tiny", "--size", "112", "--port", "0"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving on"):
                break
        url = re.search(r"http://127\.0\.0\.1:\d+/", "".join(lines))
        assert url, "".join(lines)
        with urllib.request.urlopen(url.group(0) + "api/info", timeout=30) as r:
            info = json.load(r)
        assert info["random_weights"] and "RANDOM" in info["weights"]
        assert "weights are RANDOM" in "".join(lines)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines) + out
    assert "shutting down" in out
    assert (tmp_path / "masks").is_dir() and not list((tmp_path / "masks").iterdir())  # nothing written


def test_busy_port_is_a_clear_error(tmp_path, capsys):
    import argparse
    import socket

    from skipclick_jax.annotate import command

    write_images(tmp_path / "images")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        parser = argparse.ArgumentParser()
        command.register(parser.add_subparsers())
        args = parser.parse_args(["annotate", str(tmp_path / "images"), "--out", str(tmp_path / "masks"),
                                  "--preset", "tiny", "--size", "112", "--port", str(s.getsockname()[1])])
        with pytest.raises(ValueError, match="cannot listen on 127.0.0.1"):
            args.run(args)


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:.*is not a DINOv2 hub model")  # the small test encoder, expected
def test_real_checkpoint_is_served_without_the_random_banner(tmp_path):
    """An original-format .pth (small SkipClick from the parity helpers) loads and answers clicks, at the
    network size the checkpoint was trained at (112 here) when no --size is given."""
    pytest.importorskip("torch")
    import argparse
    import io

    import numpy as np
    from PIL import Image

    from skipclick_jax.annotate import AnnotationServer, command
    from tests.parity import make_reference, write_checkpoint

    from .conftest import Client

    ckpt = tmp_path / "small_skipclick.pth"
    write_checkpoint(make_reference("skipclick", seed=5), ckpt)
    write_images(tmp_path / "images")
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["annotate", str(tmp_path / "images"), "--out", str(tmp_path / "masks"),
                              "--checkpoint", str(ckpt), "--no-flip", "--no-prefetch"])
    app = command.build_app(args)
    server = AnnotationServer(app, "127.0.0.1", 0)
    server.start_background()
    try:
        c = Client(server.port)
        info = c.get("/api/info").json()
        assert info["random_weights"] is False and info["weights"] == "weights from small_skipclick.pth"
        assert info["flip"] is False and info["size"] == 112
        r = c.post("/api/images/1/click", {"x": 40, "y": 50})
        assert r.status == 200 and np.array(Image.open(io.BytesIO(r.body))).shape == (100, 80)
    finally:
        server.shutdown()
        server.server_close()
