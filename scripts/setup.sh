#!/usr/bin/env bash
# Install everything the platform needs on a fresh Debian machine, without touching the
# system Python: Debian packages from deps/debian-packages.txt, uv (bootstrapped into
# .tools/uv when it is not on PATH), then every workspace package into .venv from uv.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

export UV_PYTHON_DOWNLOADS=never
UV_VERSION=0.13.8

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_debian_packages() {
  local wanted missing=()
  wanted=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' deps/debian-packages.txt)
  for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

find_uv() {
  if [ -x .tools/uv/bin/uv ]; then
    echo .tools/uv/bin/uv
  elif command -v uv >/dev/null 2>&1; then
    command -v uv
  else
    log "bootstrapping uv $UV_VERSION into .tools/uv"
    local python
    python=$(command -v python3 || command -v python)
    "$python" -m venv .tools/uv
    .tools/uv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    echo .tools/uv/bin/uv
  fi
}

install_debian_packages
UV=$(find_uv)
log "syncing the workspace into .venv ($("$UV" --version))"
"$UV" sync --all-packages --locked
# Later steps (nox sessions) call uv by name: make it findable.
mkdir -p .venv/bin
[ -e .venv/bin/uv ] || ln -s "$(cd "$(dirname "$UV")" && pwd)/$(basename "$UV")" .venv/bin/uv
