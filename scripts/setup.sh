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
  if [ "$(id -u)" -ne 0 ]; then
    if ! sudo -n true 2>/dev/null; then
      echo "missing Debian packages: ${missing[*]}; install them as root:" >&2
      echo "  apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
    sudo="sudo -n"
  fi
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
}

uv_is_pinned() { [ -x "$1" ] && [ "$("$1" --version 2>/dev/null | cut -d' ' -f2)" = "$UV_VERSION" ]; }

find_uv() {
  local candidate python
  for candidate in .tools/uv/bin/uv "$(command -v uv || true)"; do
    if [ -n "$candidate" ] && uv_is_pinned "$candidate"; then
      echo "$candidate"
      return
    fi
  done
  log "bootstrapping uv $UV_VERSION into .tools/uv"
  python=$(command -v python3 || command -v python)
  rm -rf .tools/uv
  # A venv where python3-venv is installed; otherwise pip's --target, which needs neither
  # venv nor a global install (the system pip may refuse those, PEP 668).
  if "$python" -m venv .tools/uv >/dev/null 2>&1; then
    .tools/uv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" >&2
  else
    rm -rf .tools/uv
    "$python" -m pip install --quiet --disable-pip-version-check --target .tools/uv \
      "uv==$UV_VERSION" >&2
  fi
  uv_is_pinned .tools/uv/bin/uv || { echo "could not install uv $UV_VERSION into .tools/uv" >&2; exit 1; }
  echo .tools/uv/bin/uv
}

# The web UI (apps/playground): `npm ci` from its lock, `next build` to a static export, copied
# into the gateway package, which serves it at / (and a wheel built afterwards carries it).
# Skipped when nothing under apps/playground changed since the last build (a hash stamp of its
# sources: see ui_source_hash).
# The hash of the UI's sources: the files git tracks under apps/playground (their content, and
# edits not yet committed), so what a build writes there and git ignores (next-env.d.ts,
# .next/, out/, node_modules/) never makes the next run build again. Outside a git checkout
# (an unpacked archive), every file but those build outputs.
ui_source_hash() {
  local app=$1
  if git -C "$app" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$app" && git ls-files -z --cached --others --exclude-standard -- . | LC_ALL=C sort -z \
      | { xargs -0 sha256sum 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
  else
    (cd "$app" && find . -path ./node_modules -prune -o -path ./.next -prune -o -path ./out -prune \
      -o -name next-env.d.ts -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum \
      | sha256sum | cut -d' ' -f1)
  fi
}

build_ui() {
  local app=apps/playground dest=apps/gateway/src/platform_gateway/ui stamp hash
  if ! command -v npm >/dev/null 2>&1; then
    log "npm not found: the web UI is not built (install Node.js 20 and npm, then run make setup)"
    return 0
  fi
  hash=$(ui_source_hash "$app")
  stamp="$dest/.build-hash"
  if [ -f "$dest/index.html" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
    return 0
  fi
  log "building the web UI (npm ci, next build)"
  export NEXT_TELEMETRY_DISABLED=1
  (cd "$app" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build >/dev/null)
  rm -rf "$dest.tmp" && cp -r "$app/out" "$dest.tmp"
  # gzip copies of the text files, sent to browsers that accept gzip (the gateway
  # never compresses per request); -n keeps the copies identical build to build.
  find "$dest.tmp" -type f \( -name '*.html' -o -name '*.js' -o -name '*.css' -o -name '*.json' \
    -o -name '*.svg' -o -name '*.txt' -o -name '*.map' \) -size +1k -exec gzip -9 -k -n {} +
  echo "$hash" >"$dest.tmp/.build-hash"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

install_debian_packages
build_ui
UV=$(find_uv)
log "syncing the workspace into .venv ($("$UV" --version))"
"$UV" sync --all-packages --locked
# Later steps (nox sessions) call uv by name: make it findable.
mkdir -p .venv/bin
ln -sfn "$(cd "$(dirname "$UV")" && pwd)/$(basename "$UV")" .venv/bin/uv
