#!/usr/bin/env bash
# Home Assistant's Matter server (python-matter-server) as a test peer, in its OWN venv: its pinned CHIP wheels
# (home-assistant-chip-core/-clusters 2024.11.4) conflict with the project's (2025.7.0).
#
# Idempotent: a venv that already has exactly these pins is left as it is. The venv lives at
# $JFDS_MATTER_SERVER_VENV, default $HOME/.cache/jfds-matter-server/venv; tests/e2e/matter_server.py looks there
# and skips with a reason where it is absent. Needs python3 >= 3.11 with venv, and the CHIP wheel needs Debian's
# libnl-3-200 and libnl-route-3-200 (.ci/run installs them for the project's own CHIP controller).
#
# The pins are those of python-matter-server 7.0.1's "server" extra (its METADATA), checked by pip's resolver
# (`pip check` below): the server itself plus home-assistant-chip-core 2024.11.4 and the clusters wheel it pins.
set -euo pipefail

VENV="${JFDS_MATTER_SERVER_VENV:-$HOME/.cache/jfds-matter-server/venv}"
PYTHON="${PYTHON:-python3}"
PINS=(
  "python-matter-server[server]==7.0.1"
  "home-assistant-chip-core==2024.11.4"
  "home-assistant-chip-clusters==2024.11.4"
  "aiohttp==3.11.11"
  "aiorun==2024.8.1"
  "async-timeout==5.0.1"
  "atomicwrites==1.4.1"
  "coloredlogs==15.0.1"
  "cryptography==44.0.0"
  "orjson==3.10.13"
  "zeroconf==0.136.2"
)
STAMP="$VENV/.jfds-pins"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
    && "$VENV/bin/python" -c "import matter_server.server, matter_server.client, chip.native" 2>/dev/null; then
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
"$VENV/bin/pip" check --disable-pip-version-check >/dev/null
"$VENV/bin/python" -c "import matter_server.server, matter_server.client, chip.native"
printf '%s\n' "$WANT" >"$STAMP"
