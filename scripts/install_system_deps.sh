#!/usr/bin/env bash
# System libraries the stack needs beyond Python wheels: OSMesa for headless MuJoCo rendering;
# Xvfb, xdotool and x11-apps (xwd) for the live-viewer tests (tests/viewer: a real X server,
# real screenshots and key presses).
set -euo pipefail
missing=()
for pkg in libosmesa6 xvfb xdotool x11-apps; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "Please install: ${missing[*]} (headless rendering and the viewer tests)" >&2; exit 1
fi
echo "Installing system packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
