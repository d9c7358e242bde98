"""Live MuJoCo viewer for sim_node, pidog-eval and pidog-train (issue 16).

MuJoCo's passive viewer (``mujoco.viewer.launch_passive``, GLFW) renders on its own thread.
The physics never waits for it: the caller hands over the current state with ``submit`` (a
non-blocking copy into a staging MjData; a frame is dropped when the viewer is busy) and a
feeder thread copies the latest state into the viewer's own MjData/MjModel, draws the overlay
(ground-truth heading arrow labelled with heading, command and sim time; commanded-velocity
arrows) and syncs the window.
Closing the window stops only the viewer.

Without a display (no DISPLAY/WAYLAND_DISPLAY, or GL fails to start) ``LiveViewer.open`` says
so in one line and returns None: callers carry on and write videos instead.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import mujoco
import mujoco.viewer
import numpy as np

from pidog_description.rotations import yaw_from_quaternion
from pidog_description.spec import OBS_SLICES, clip_command

# Keyboard driving in the eval viewer: arrows step the command, space stops.
KEY_SPACE, KEY_RIGHT, KEY_LEFT, KEY_DOWN, KEY_UP = 32, 262, 263, 264, 265
VX_STEP = 0.05  # m/s per up/down press
WZ_STEP = 0.2  # rad/s per left/right press

# The probe's exit status names the step that failed (display_problem reports it).
_INIT_FAILED, _WINDOW_FAILED = 3, 4
_PROBE_STEPS = {_INIT_FAILED: "glfw.init", _WINDOW_FAILED: "window"}
_GL_PROBE = (
    "import sys, glfw\n"
    f"if not glfw.init(): sys.exit({_INIT_FAILED})\n"
    "glfw.window_hint(glfw.VISIBLE, glfw.FALSE)\n"
    "w = glfw.create_window(16, 16, 'pidog-gl-probe', None, None)\n"
    f"if not w: sys.exit({_WINDOW_FAILED})\n"
    "glfw.make_context_current(w)\n"
    "glfw.destroy_window(w); glfw.terminate()\n"
)


def display_problem(timeout: float = 20.0) -> str | None:
    """None if a window with a GL context can be opened here, else why not (one phrase).

    GL is tried in a child process, so a broken driver cannot crash or hang the caller.
    """
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _GL_PROBE], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"OpenGL did not start within {timeout:g} s on display {os.environ.get('DISPLAY', '')!r}"
    if probe.returncode != 0:
        return f"OpenGL/GLFW failed to start on display {os.environ.get('DISPLAY', '')!r} ({_probe_failure(probe)})"
    return None


def _probe_failure(probe: subprocess.CompletedProcess) -> str:
    """What the GL probe said: GLFW reports through a Python warning, whose last stderr line is
    the warnings.warn call, not the error, so the GLFWError line is looked for first."""
    stage = _PROBE_STEPS.get(probe.returncode, f"exit {probe.returncode}")
    lines = probe.stderr.strip().splitlines()
    errors = [line.split("GLFWError:", 1)[1].strip() for line in lines if "GLFWError:" in line]
    detail = errors[-1] if errors else (lines[-1].strip() if lines else "no message")
    return f"{stage}: {detail[:160]}"


class LiveViewer:
    """A passive MuJoCo viewer fed snapshots of one simulated robot; never blocks physics."""

    def __init__(self, model: mujoco.MjModel, key_control: bool = False, title: str = "pidog") -> None:
        self.model = copy.copy(model)  # the viewer's own: physics models are never touched here
        self.data = mujoco.MjData(self.model)
        self._staging = mujoco.MjData(self.model)
        self._lock = threading.Lock()
        self._fresh = threading.Event()
        self._stop = threading.Event()
        self._command = np.zeros(2)
        self._text = title
        self.key_control = key_control
        self.key_command: np.ndarray | None = None  # set by the keyboard (eval viewer)
        self.key_log: list[tuple[float, float, float]] = []  # (sim time, vx, wz) per key change
        # (sim time, vx, wz) each time the command in the controller's observation changed: what
        # the policy saw, as opposed to what the keyboard asked for.
        self.seen_log: list[tuple[float, float, float]] = []
        self.episodes_shown = 0
        self.frames_drawn = 0
        self._deadline: float | None = None
        self._base = self.model.body("base_link").id if self.model.nbody > 1 else 0

        before = set(threading.enumerate())
        self.handle = mujoco.viewer.launch_passive(
            self.model,
            self.data,
            key_callback=self._on_key if key_control else None,
            show_left_ui=False,
            show_right_ui=False,
        )
        self._gui_threads = [t for t in threading.enumerate() if t not in before]
        self._feeder = threading.Thread(target=self._feed, name="pidog-viewer-feed", daemon=True)
        self._feeder.start()

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        model: mujoco.MjModel,
        who: str,
        key_control: bool = False,
        say: Callable[[str], object] | None = None,
        timeout: float = 20.0,
        instead: str = "videos are written instead",
    ) -> LiveViewer | None:
        """A viewer, or None after one clear line (via ``say``, default stderr) saying why not
        and what happens ``instead``."""
        say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        problem = display_problem(timeout)
        if problem is None:
            box: dict[str, Any] = {}

            def _launch() -> None:
                try:
                    box["viewer"] = cls(model, key_control=key_control, title=who)
                except Exception as exc:  # noqa: BLE001 - any GL/GLFW failure means "no viewer"
                    box["error"] = exc

            opener = threading.Thread(target=_launch, name="pidog-viewer-open", daemon=True)
            opener.start()
            opener.join(timeout)
            if "viewer" in box:
                return box["viewer"]
            problem = (
                f"the viewer window did not open ({box.get('error', f'no window within {timeout:g} s')})"
            )
        say(f"{who}: {problem}: live viewer off, {instead}")
        return None

    # --- the caller's side (control loop) --------------------------------------------------
    @property
    def running(self) -> bool:
        return not self._stop.is_set() and self.handle.is_running()

    def submit(self, batch: Any, index: int = 0, command: np.ndarray | None = None) -> bool:
        """Hand robot ``index`` of ``batch`` (a BatchSim) to the viewer; drops the frame rather than
        wait if the viewer is copying. False once the window is closed."""
        if not self.running:
            return False
        if not self._lock.acquire(blocking=False):
            return True
        try:
            batch.sync_data(index, self._staging)
            if command is not None:
                self._command[:] = np.asarray(command, dtype=np.float64).reshape(2)
        finally:
            self._lock.release()
        self._fresh.set()
        return True

    # --- driving a PiDogEnv (pidog-eval, training rollouts) -----------------------------------
    def drive(self, env: Any) -> None:
        """Before a step: the keyboard's command, if any, becomes robot 0's command."""
        if self.key_command is not None:
            env.task.command[0] = self.key_command
            env.task.fixed_command[0] = True

    def begin_episode(self) -> None:
        self.episodes_shown += 1

    def saw(self, env: Any, obs: np.ndarray) -> None:
        """The observation robot 0's controller is about to act on: log its command if it changed."""
        vx, wz = (float(v) for v in np.asarray(obs)[OBS_SLICES["command"]])
        if not self.seen_log or self.seen_log[-1][1:] != (vx, wz):
            self.seen_log.append((float(env.task.sim.time[0]), vx, wz))

    def show(self, env: Any) -> None:
        """After a step: show the env's robot and keep to real time while the window is open."""
        if not self.submit(env.task.sim, 0, env.task.command[0]):
            return
        dt = float(env.task.sim.control_dt)
        now = time.monotonic()
        if self._deadline is None or now - self._deadline > 0.25:
            self._deadline = now
        self._deadline += dt
        if self._deadline > now:
            time.sleep(self._deadline - now)

    def _on_key(self, key: int) -> None:
        base = self._command.copy() if self.key_command is None else self.key_command
        if key == KEY_UP:
            new = base + (VX_STEP, 0.0)
        elif key == KEY_DOWN:
            new = base - (VX_STEP, 0.0)
        elif key == KEY_LEFT:
            new = base + (0.0, WZ_STEP)
        elif key == KEY_RIGHT:
            new = base - (0.0, WZ_STEP)
        elif key == KEY_SPACE:
            new = np.zeros(2)
        else:
            return
        new = np.round(clip_command(new), 6)
        self.key_command = new
        # Under the lock: submit() rebuilds the staging data from a reset, so an unlocked read
        # can catch its time at 0 halfway through.
        with self._lock:
            sim_time = float(self._staging.time)
        self.key_log.append((sim_time, float(new[0]), float(new[1])))
        print(f"viewer: command vx={new[0]:+.2f} m/s wz={new[1]:+.2f} rad/s", flush=True)

    # --- the viewer's side -----------------------------------------------------------------
    def _feed(self) -> None:
        qpos = np.zeros(self.model.nq)
        first = True
        while not self._stop.is_set() and self.handle.is_running():
            if not self._fresh.wait(0.1):
                continue
            self._fresh.clear()
            with self._lock:
                qpos[:] = self._staging.qpos
                sim_time = float(self._staging.time)
                command = self._command.copy()
            try:
                # All of it under the viewer's own lock (recursive: sync takes it again). Its
                # render thread frees its copy of the model and data under that lock once the
                # window is closed, and marks itself closed (exitrequest) before it lets go, so
                # "still running" asked here stays true until we let go. Asked outside it, the
                # window could close between the question and sync(), which then copied into
                # freed memory. The numbers ride on the heading arrow's label, not set_texts:
                # set_texts waits, without a timeout and without asking whether the window is
                # still open, for the render thread to take the previous text, so after a close
                # it spun until the viewer was destroyed under it (and under this lock it could
                # never return). sim_node was found dead with no Python trace after its window
                # was closed: twice in CI, once in a fresh-clone check of .ci/run.
                with self.handle.lock():
                    if not self.handle.is_running():
                        break
                    if first:  # follow the robot from behind its left shoulder
                        cam = self.handle.cam
                        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
                        cam.trackbodyid = self._base
                        cam.distance, cam.elevation, cam.azimuth = 0.6, -20.0, 145.0
                        first = False
                    self.data.qpos[:] = qpos
                    self.data.time = sim_time
                    mujoco.mj_forward(self.model, self.data)
                    self._overlay(command)
                    self.handle.sync()
                self.frames_drawn += 1
            except Exception:  # noqa: BLE001 - the viewer was destroyed under us (UnexpectedError)
                break

    def _overlay(self, command: np.ndarray) -> None:
        """Arrows into the user scene, the numbers as the heading arrow's label."""
        scn = self.handle.user_scn
        if scn is None:
            return
        pos = self.data.xpos[self._base].copy()
        yaw = float(yaw_from_quaternion(self.data.xquat[self._base]))
        fwd = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        left = np.array([-math.sin(yaw), math.cos(yaw), 0.0])
        start = pos + (0.0, 0.0, 0.07)
        vx, wz = float(command[0]), float(command[1])
        label = f"heading {math.degrees(yaw):+.1f} deg  cmd {vx:+.2f} m/s {wz:+.2f} rad/s  t {self.data.time:.1f} s"
        arrows = [(start, start + 0.15 * fwd, (0.1, 0.8, 0.2, 1.0), label)]  # ground-truth heading
        if abs(vx) > 1e-3:  # commanded forward speed: 1.5 m of arrow per m/s
            lift = start + (0, 0, 0.02)
            arrows.append((lift, lift + 1.5 * vx * fwd, (0.15, 0.35, 1.0, 1.0), ""))
        if abs(wz) > 1e-3:  # commanded yaw rate: a sideways arrow at the nose (left = +wz)
            nose = start + 0.15 * fwd
            purple = (0.75, 0.2, 0.85, 1.0)  # not robot orange, which the tests count as robot
            arrows.append((nose, nose + 0.1 * wz * left, purple, ""))
        scn.ngeom = 0
        for a, b, rgba, text in arrows:
            geom = scn.geoms[scn.ngeom]
            mujoco.mjv_initGeom(
                geom, mujoco.mjtGeom.mjGEOM_ARROW, np.zeros(3), np.zeros(3), np.eye(3).ravel(),
                np.asarray(rgba, dtype=np.float32),
            )  # fmt: skip
            mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_ARROW, 0.004, np.asarray(a), np.asarray(b))
            geom.label = text
            scn.ngeom += 1

    def close(self) -> None:
        """Close the window (if still open) and wait for the viewer's threads."""
        self._stop.set()
        self._fresh.set()
        self._feeder.join(5.0)
        try:
            self.handle.close()
        except Exception:  # noqa: BLE001 - already gone
            pass
        for thread in self._gui_threads:
            thread.join(5.0)
