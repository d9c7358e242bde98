"""Import modules with heavy training-only packages made unimportable (the Pi deploy footprint).

Usage: python tests/footprint.py MODULE [MODULE ...]
Exits 0 when every module imports without torch, mujoco or stable_baselines3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

BLOCKED = ("torch", "mujoco", "stable_baselines3", "gymnasium")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: D102
        if fullname.split(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} is blocked: not available on the deploy target")
        return None


def main(modules: list[str]) -> int:
    sys.meta_path.insert(0, _Blocker())
    for name in modules:
        importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    if leaked:
        print(f"blocked modules were imported: {leaked}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
