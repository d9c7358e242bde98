"""``ray start`` for a second node on 127.0.0.1: the real Ray CLI, kept on loopback.

Usage: ``python tests/cluster/loopback_ray.py start --address=127.0.0.1:PORT ...`` (any
``ray start`` arguments).

Why this wrapper: Ray turns a loopback ``--node-ip-address``/``--address`` into this machine's
outward-facing IP (``services.resolve_ip_for_localhost``), and its only switch against that
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which the head node uses) also forbids
``ray start --address``. Two nodes on one machine, both on 127.0.0.1, need the rewrite off
for this process; everything else is the unmodified ``ray start``.
"""

from __future__ import annotations

import sys

import ray._private.services as services


def _loopback(host: str) -> str:
    return host


services.resolve_ip_for_localhost = _loopback
services.get_node_ip_address = lambda address=None: "127.0.0.1"

from ray.scripts.scripts import main  # noqa: E402 - after the patch, which it must see

if __name__ == "__main__":
    sys.exit(main())
