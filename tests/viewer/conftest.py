"""Fixtures for the live-viewer tests: a real X server (Xvfb, started here on a free display
number) and an environment whose child processes render onto it with GLFW in software."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from xdisplay import TOOLS, XServer


@pytest.fixture(scope="module")
def xserver() -> Iterator[XServer]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing {missing}: run scripts/install_system_deps.sh (Debian: xvfb xdotool x11-apps)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    number = b""
    end = time.monotonic() + 20
    while not number.endswith(b"\n") and time.monotonic() < end:
        if not select.select([read_fd], [], [], max(0.0, end - time.monotonic()))[0]:
            break
        chunk = os.read(read_fd, 16)
        if not chunk:
            break
        number += chunk
    os.close(read_fd)
    if not number.strip():
        proc.kill()
        pytest.fail("Xvfb did not report a display number")
    server = XServer(f":{int(number)}", proc)
    yield server
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def on_display(xserver: XServer, monkeypatch: pytest.MonkeyPatch) -> XServer:
    """This test's child processes see the Xvfb display and render with GLFW in software."""
    monkeypatch.setenv("DISPLAY", xserver.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("MUJOCO_GL", "glfw")
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setenv("LIBGL_ALWAYS_SOFTWARE", "1")
    return xserver
