"""pidog-calibrate: set and save the servo offsets, and run the safe stand-up / lie-down.

    pidog-calibrate show
    pidog-calibrate set lf_hip=2.5 rh_knee=-1 [--apply]    # non-interactive
    pidog-calibrate zero [--apply]
    pidog-calibrate interactive                            # keyboard, servos at the ruler pose
    pidog-calibrate stand | lie

Calibration pose: every joint at 0 rad, which is SunFounder's "ruler" pose (servo 0 deg; the
calibration ruler's 90 degree mark). Offsets are servo degrees, clamped to +-20 like
SunFounder's, and saved atomically to ``--file`` (default ~/.config/pidog_hw/calibration.yaml,
which hw_node reads by default). Hardware options match hw_node's parameters;
``--i2c-bus emulated`` / ``--serial-port emulated`` use the device emulators (TEST/DEMO ONLY).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np

from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.robot import JOINT_NAMES, N_JOINTS
from pidog_description.spec import CONTROL_DT

from .calibration import (
    DEFAULT_CALIBRATION_PATH,
    MAX_OFFSET_DEG,
    Calibration,
    load_calibration,
    save_calibration,
)
from .errors import CalibrationError, HardwareError
from .i2c import EMULATED_BUS, open_smbus
from .sequences import lie_down, play, stand_up
from .servo_backend import BACKENDS, ServoBackend, make_servo_backend

CALIBRATION_POSE = np.zeros(N_JOINTS)
FINE_STEP_DEG = 0.5
COARSE_STEP_DEG = 2.0
HELP = (
    "keys: 1-8 select joint (a/d or left/right: previous/next), w/s or up/down: +/-0.5 deg, "
    "W/S: +/-2 deg, z: zero joint, p: print all, x: save, q: quit, h: help"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pidog-calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--file", type=Path, default=DEFAULT_CALIBRATION_PATH, help="calibration YAML to read and write"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="robot_hat", help="servo backend (as hw_node)")
    parser.add_argument(
        "--i2c-bus", default="1", help="I2C bus number, /dev/i2c-N, or 'emulated' (test/demo)"
    )
    parser.add_argument(
        "--i2c-address", type=lambda s: int(s, 0), default=0, help="Robot HAT address; 0 = probe"
    )
    parser.add_argument(
        "--serial-port", default="/dev/ttyACM0", help="Maestro port, or 'emulated' (test/demo)"
    )
    parser.add_argument("--serial-baud", type=int, default=115200)
    parser.add_argument(
        "--maestro-channels",
        type=lambda s: tuple(int(c) for c in s.split(",")),
        default=tuple(range(N_JOINTS)),
        help="comma-separated Maestro channel per joint",
    )
    parser.add_argument("--emulator-log", default="", help="JSON-lines log of emulated device transactions")
    parser.add_argument("--yes", action="store_true", help="do not ask before moving the servos")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("show", help="print the offsets in --file")
    set_cmd = sub.add_parser("set", help="set offsets non-interactively: JOINT=DEGREES ...")
    set_cmd.add_argument("assignments", nargs="+", metavar="JOINT=DEGREES")
    set_cmd.add_argument("--apply", action="store_true", help="then move the servos to the calibration pose")
    zero = sub.add_parser("zero", help="set every offset to 0")
    zero.add_argument("--apply", action="store_true", help="then move the servos to the calibration pose")
    sub.add_parser(
        "interactive", help="adjust offsets with the keyboard while the servos hold the calibration pose"
    )
    sub.add_parser("stand", help="safe stand-up: lie pose, then rise slowly")
    lie = sub.add_parser("lie", help="safe lie-down from the stand pose, then stop the pulses")
    lie.add_argument("--keep-pulses", action="store_true", help="keep the servos powered in the lie pose")
    return parser


def load_or_default(path: Path) -> Calibration:
    return load_calibration(path) if path.exists() else Calibration(source=f"{path} (new)")


def parse_assignment(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise CalibrationError(f"expected JOINT=DEGREES, got {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise CalibrationError(
            f"offset for {name.strip()} must be a number of degrees, got {value!r}"
        ) from None


def apply_assignments(calibration: Calibration, assignments: list[str], out: TextIO) -> Calibration:
    for text in assignments:
        joint, value = parse_assignment(text)
        calibration, clamped = calibration.with_offset(joint, value)
        if clamped:
            print(
                f"{joint}: {value:g} deg clamped to {calibration.offset(joint):g} (limit +-{MAX_OFFSET_DEG:g})",
                file=out,
            )
    return calibration


def format_offsets(calibration: Calibration) -> str:
    return "\n".join(f"  {name:8s} {value:+6.1f} deg" for name, value in calibration.as_dict().items())


@contextlib.contextmanager
def open_backend(args: argparse.Namespace, calibration: Calibration, out: TextIO) -> Iterator[ServoBackend]:
    """The servo backend hw_node would use, opened; devices released on exit."""
    bus: Any = None
    emulator: Any = None
    log_path = args.emulator_log or None
    try:
        if args.backend == "robot_hat":
            if args.i2c_bus == EMULATED_BUS:
                from .emulation import emulated_pidog_bus

                print("I2C bus is EMULATED (test/demo): no hardware moves", file=out)
                bus = emulated_pidog_bus(log_path)
            else:
                bus = open_smbus(args.i2c_bus)
        port = args.serial_port
        if args.backend == "maestro" and port == "emulated":
            from .emulation import MaestroEmulator

            emulator = MaestroEmulator(log_path=log_path).start()
            port = emulator.port
            print(f"Maestro is EMULATED on {port} (test/demo): no hardware moves", file=out)
        backend = make_servo_backend(
            args.backend,
            calibration,
            log=lambda text: print(text, file=out),
            bus=bus,
            bus_label=args.i2c_bus,
            i2c_address=args.i2c_address,
            serial_port=port,
            serial_baud=args.serial_baud,
            maestro_channels=args.maestro_channels,
        )
        backend.open()
        try:
            yield backend
        finally:
            backend.close()
    finally:
        if emulator is not None:
            emulator.close()
        if bus is not None:
            bus.close()


def confirm(question: str, args: argparse.Namespace, read_key: Callable[[], str], out: TextIO) -> bool:
    if args.yes:
        return True
    print(f"{question} [y/N] ", end="", file=out, flush=True)
    answer = read_key().strip().lower()
    print(file=out)
    return answer.startswith("y")


# --- interactive ---------------------------------------------------------------------------


@contextlib.contextmanager
def raw_keys(stream: TextIO) -> Iterator[Callable[[], str]]:
    """Single key presses from a terminal (cbreak: Ctrl-C still interrupts), restored on exit."""
    fd = stream.fileno()
    if not os.isatty(fd):
        raise CalibrationError(
            "interactive mode needs a terminal on stdin; use 'pidog-calibrate set JOINT=DEG ...'"
        )
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read_key() -> str:
        key = os.read(fd, 1).decode(errors="replace")
        if key == "\x1b":  # arrow keys arrive as ESC [ A..D
            rest = os.read(fd, 2).decode(errors="replace")
            return {"[A": "UP", "[B": "DOWN", "[C": "RIGHT", "[D": "LEFT"}.get(rest, "")
        return key

    try:
        yield read_key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def interactive(
    calibration: Calibration, backend: ServoBackend, path: Path, read_key: Callable[[], str], out: TextIO
) -> Calibration:
    """The keyboard loop. Every change is sent to the servos at once; 'x' saves."""
    selected, saved = 0, True
    print(HELP, file=out)

    def show() -> None:
        name = JOINT_NAMES[selected]
        mark = "" if saved else "  [unsaved]"
        print(f"[{selected + 1}] {name:8s} {calibration.offset(name):+5.1f} deg{mark}", file=out, flush=True)

    show()
    while True:
        key = read_key()
        step = {"w": FINE_STEP_DEG, "UP": FINE_STEP_DEG, "s": -FINE_STEP_DEG, "DOWN": -FINE_STEP_DEG}.get(key)
        step = {"W": COARSE_STEP_DEG, "S": -COARSE_STEP_DEG}.get(key, step)
        name = JOINT_NAMES[selected]
        if len(key) == 1 and key in "12345678":
            selected = int(key) - 1
        elif key in ("a", "LEFT"):
            selected = (selected - 1) % N_JOINTS
        elif key in ("d", "RIGHT"):
            selected = (selected + 1) % N_JOINTS
        elif step is not None or key == "z":
            value = 0.0 if key == "z" else calibration.offset(name) + cast(float, step)  # not "z": a step
            calibration, clamped = calibration.with_offset(name, round(value, 3))
            if clamped:
                print(f"{name}: limit +-{MAX_OFFSET_DEG:g} deg reached", file=out)
            backend.calibration = calibration
            backend.write_targets(CALIBRATION_POSE)
            saved = False
        elif key == "p":
            print(format_offsets(calibration), file=out)
        elif key == "x":
            print(f"saved {save_calibration(calibration, path)}", file=out)
            saved = True
        elif key == "q":
            if not saved:
                print("unsaved changes: press x to save, q again to discard", file=out, flush=True)
                if read_key() != "q":
                    continue
            return calibration
        elif key == "h":
            print(HELP, file=out)
        show()


# --- main ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    calibration = load_or_default(args.file)
    if args.command == "show":
        print(f"{calibration.source}:\n{format_offsets(calibration)}", file=out)
        return 0
    if args.command in ("set", "zero"):
        if args.command == "set":
            calibration = apply_assignments(calibration, args.assignments, out)
        else:
            calibration = Calibration(np.zeros(N_JOINTS), calibration.source)
        print(f"saved {save_calibration(calibration, args.file)}:\n{format_offsets(calibration)}", file=out)
        if args.apply:
            with open_backend(args, calibration, out) as backend:
                backend.write_targets(CALIBRATION_POSE)
                print("servos at the calibration pose (all joints 0 rad)", file=out)
        return 0
    if args.command == "interactive":
        with raw_keys(sys.stdin) as read_key:
            if not confirm("Servos move to the calibration pose. Robot on its stand?", args, read_key, out):
                return 1
            with open_backend(args, calibration, out) as backend:
                backend.write_targets(CALIBRATION_POSE)
                interactive(calibration, backend, args.file, read_key, out)
                backend.stop_pulses()
        return 0
    with open_backend(args, calibration, out) as backend:
        if args.command == "stand":
            play(backend, stand_up(LIE_POSE, CONTROL_DT), LIE_POSE, CONTROL_DT)
            print("standing (servos hold the stand pose)", file=out)
        else:
            # Hobby servos cannot say where they are: assume the stand pose, or ask a Maestro.
            start = STAND_POSE
            if backend.has_feedback:
                measured = backend.read_positions()
                start = np.where(np.isnan(measured), STAND_POSE, measured)
            play(backend, lie_down(start, CONTROL_DT), start, CONTROL_DT)
            if not args.keep_pulses:
                backend.stop_pulses()
            print("lying down" + (" (servos powered)" if args.keep_pulses else ", pulses stopped"), file=out)
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = run(args)
    except (CalibrationError, HardwareError, ValueError) as exc:
        print(f"pidog-calibrate: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    except KeyboardInterrupt:
        print("\ninterrupted: nothing saved since the last 'x'", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(code)


if __name__ == "__main__":
    main()
