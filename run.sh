#!/usr/bin/env bash
# Stemforge: one script that sets everything up on a fresh machine, then runs what you ask.
#   ./run.sh serve [serve options]   start the daemon on the embedded default model
#   ./run.sh test  [pytest options]  run the test suite
#   ./run.sh setup                   only install (system packages + .venv)
#   ./run.sh stemforge ARGS...       any stemforge command inside the environment
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="${STEMFORGE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

log() { printf '[run.sh] %s\n' "$*" >&2; }

# System packages: FluidSynth + GM soundfont (studio), PortAudio (audition), liblo-tools (OSC peers
# for tests), sox/alsa-utils (audio checks). Installed with apt when we can; otherwise the feature
# that needs one says clearly that it is missing.
SYSTEM_PACKAGES=(fluidsynth fluid-soundfont-gm libportaudio2 liblo-tools sox alsa-utils)
# Only for the test suite: headless Chromium (web studio end-to-end test) and Node (Max for Live device test).
TEST_SYSTEM_PACKAGES=(chromium)
install_system_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not found; missing system packages: ${missing[*]} (features needing them report it)"
    return 0
  fi
  local SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      log "not root and no sudo: please install ${missing[*]}"; return 0; fi
  fi
  log "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq >/dev/null || log "apt-get update failed (continuing)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null \
    || log "apt-get install failed for some of: ${missing[*]} (features needing them report it)"
}

install_python() {
  local stamp="$VENV/.stemforge-installed"
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment in $VENV"
    "$PY" -m venv "$VENV"
  fi
  log "installing Python dependencies (torch 2.11 + torchaudio 2.11 pinned; first run downloads ~4.6 GB)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
}

install_node_packages() {
  # npm packages of the thin clients' tests (ws, playwright-core driving Debian's chromium).
  command -v npm >/dev/null 2>&1 || { log "npm not found: the Node client tests will be skipped"; return 0; }
  local stamp="clients/node_modules/.stemforge-lock"
  local want
  want="$(sha256sum clients/package-lock.json | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "installing the clients' npm packages (npm ci)"
  (cd clients && npm ci --no-audit --no-fund --loglevel=error --include=dev >/dev/null)
  echo "$want" > "$stamp"
}

setup() {
  install_system_packages "${SYSTEM_PACKAGES[@]}"
  install_python
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup ;;
  serve)
    setup
    exec "$VENV/bin/stemforge" serve "$@" ;;
  test)
    setup
    install_system_packages "${TEST_SYSTEM_PACKAGES[@]}"
    install_node_packages
    export PYTHONHASHSEED=0
    set +e
    "$VENV/bin/python" -m pytest -q "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
      log "pytest collected no tests: failing on purpose"
      exit 1
    fi
    exit "$rc" ;;
  stemforge)
    setup
    exec "$VENV/bin/stemforge" "$@" ;;
  *)
    sed -n '2,7p' "$0"; exit 2 ;;
esac
