#!/usr/bin/env bash
# Home Assistant's Matter server (python-matter-server) as a test peer, in its OWN venv: its pinned CHIP wheels
# (home-assistant-chip-core/-clusters 2024.11.4) conflict with the project's (2025.7.0).
#
# Idempotent: a venv that already has exactly these pins is left as it is. The venv lives at
# $JFDS_MATTER_SERVER_VENV, default $HOME/.cache/jfds-matter-server/venv; tests/e2e/matter_server.py looks there
# and skips with a reason where it is absent. Needs python3 >= 3.11 with venv, and the CHIP wheel needs Debian's
# libnl-3-200 and libnl-route-3-200 (.ci/run installs them for the project's own CHIP controller).
#
# PINS are python-matter-server 7.0.1's "server" extra as its METADATA pins them (the CHIP core and clusters wheels
# 2024.11.4 among them); CONSTRAINTS is the whole set pip's resolver chose for them on Python 3.11 (pip freeze),
# so a later install gets the same versions. `pip check` verifies the result.
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
CONSTRAINTS=(
  aenum==3.1.17
  aiohappyeyeballs==2.7.1
  aiohttp==3.11.11
  aiorun==2024.8.1
  aiosignal==1.4.0
  asttokens==3.0.2
  async-timeout==5.0.1
  atomicwrites==1.4.1
  attrs==26.1.0
  cffi==2.1.1
  coloredlogs==15.0.1
  construct==2.10.70
  cryptography==44.0.0
  dacite==1.9.2
  decorator==5.3.2
  deprecation==2.1.0
  ecdsa==0.19.2
  executing==2.3.0
  frozenlist==1.8.0
  home-assistant-chip-clusters==2024.11.4
  home-assistant-chip-core==2024.11.4
  humanfriendly==10.0
  idna==3.21
  ifaddr==0.2.0
  ipdb==0.13.13
  ipython==9.19.1
  ipython_pygments_lexers==1.1.1
  jedi==0.20.1
  markdown-it-py==4.3.0
  matplotlib-inline==0.2.2
  mdurl==0.1.2
  multidict==6.9.1
  orjson==3.10.13
  packaging==26.4
  parso==0.8.7
  pexpect==4.9.0
  prompt_toolkit==3.0.53
  propcache==0.5.4
  psutil==7.2.2
  ptyprocess==0.7.0
  pure_eval==0.2.4
  pycparser==3.12
  Pygments==2.21.0
  PyYAML==6.0.4
  rich==15.0.0
  six==1.17.0
  stack-data==0.6.3
  traitlets==5.16.1
  typing_extensions==4.16.0
  wcwidth==0.9.5
  yarl==1.25.1
  zeroconf==0.136.2
)
STAMP="$VENV/.jfds-pins"
WANT="$(printf '%s\n' "${PINS[@]}" "${CONSTRAINTS[@]}")"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
    && "$VENV/bin/python" -c "import matter_server.server, matter_server.client, chip.native" 2>/dev/null; then
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
printf '%s\n' "${CONSTRAINTS[@]}" >"$constraints"
"$VENV/bin/pip" install -q --disable-pip-version-check -c "$constraints" "${PINS[@]}"
"$VENV/bin/pip" check --disable-pip-version-check >/dev/null
"$VENV/bin/python" -c "import matter_server.server, matter_server.client, chip.native"
printf '%s\n' "$WANT" >"$STAMP"
