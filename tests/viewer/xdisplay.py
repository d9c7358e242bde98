"""Real X tools for the live-viewer tests: an Xvfb server, xwd screenshots, xdotool keys.

Xvfb picks a free display number itself (-displayfd). Screenshots are taken with ``xwd`` (the
X server's own pixels) and keys are sent with ``xdotool``; the window is closed the way a
window manager closes it (a WM_DELETE_WINDOW client message through libX11).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import subprocess
import time

import numpy as np

TOOLS = ("Xvfb", "xdotool", "xwd")


class XServer:
    def __init__(self, display: str, proc: subprocess.Popen) -> None:
        self.display = display
        self.proc = proc

    def run(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
        env = {**os.environ, "DISPLAY": self.display}
        return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout)

    def screenshot(self) -> np.ndarray:
        """The root window as an (H, W, 3) uint8 RGB array, via xwd."""
        env = {**os.environ, "DISPLAY": self.display}
        raw = subprocess.run(["xwd", "-root", "-silent"], env=env, capture_output=True, timeout=20).stdout
        return read_xwd(raw)

    def find_window(self, name: str, timeout: float) -> str | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            out = self.run("xdotool", "search", "--name", name)
            ids = out.stdout.split()
            if ids:
                return ids[-1]
            time.sleep(0.3)
        return None

    def close_window(self, window: str) -> None:
        """Ask the window to close as a window manager would (WM_DELETE_WINDOW)."""
        x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XInternAtom.restype = ctypes.c_ulong
        x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        x11.XSendEvent.argtypes = [
            ctypes.c_void_p,
            ctypes.c_ulong,
            ctypes.c_int,
            ctypes.c_long,
            ctypes.c_void_p,
        ]
        x11.XFlush.argtypes = [ctypes.c_void_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]

        class ClientMessage(ctypes.Structure):
            _fields_ = [
                ("type", ctypes.c_int),
                ("serial", ctypes.c_ulong),
                ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p),
                ("window", ctypes.c_ulong),
                ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int),
                ("data", ctypes.c_long * 5),
            ]

        class XEvent(ctypes.Union):
            _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

        dpy = x11.XOpenDisplay(self.display.encode())
        assert dpy, f"cannot open {self.display}"
        event = XEvent()
        msg = event.xclient
        msg.type = 33  # ClientMessage
        msg.window = int(window)
        msg.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        msg.format = 32
        msg.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        x11.XSendEvent(dpy, int(window), 0, 0, ctypes.byref(event))
        x11.XFlush(dpy)
        x11.XCloseDisplay(dpy)


def read_xwd(raw: bytes) -> np.ndarray:
    """Decode an XWD dump of a TrueColor screen (Xvfb's 24-bit default) to RGB."""
    header = struct.unpack(">25I", raw[:100])
    header_size, width, height = header[0], header[4], header[5]
    byte_order, bits_per_pixel, bytes_per_line, ncolors = header[7], header[11], header[12], header[19]
    start = header_size + 12 * ncolors
    n = bits_per_pixel // 8
    pixels = np.frombuffer(raw[start : start + height * bytes_per_line], np.uint8).reshape(
        height, bytes_per_line
    )
    pixels = pixels[:, : width * n].reshape(height, width, n)
    return np.ascontiguousarray(pixels[..., [2, 1, 0]] if byte_order == 0 else pixels[..., -3:])


def robot_pixels(image: np.ndarray) -> int:
    """Pixels of the PiDog's orange lower legs (rgba 0.9 0.6 0.2): nothing else in the scene is orange."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return int(np.count_nonzero((r > 150) & (r - b > 90) & (g > 0.45 * r) & (g < 0.85 * r)))


def arrow_pixels(image: np.ndarray, color: str) -> int:
    """Pixels of the overlay arrows: 'green' heading, 'blue' commanded vx."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    if color == "green":
        return int(np.count_nonzero((g > 140) & (r < 90) & (b < 110)))
    return int(np.count_nonzero((b > 170) & (r < 90) & (g < 150)))
