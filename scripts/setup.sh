#!/usr/bin/env bash
# Sets up everything mediad needs on a Debian-like machine, then leaves a virtualenv in
# .venv with mediad and its test tools installed. Safe to run again: it only does what is
# missing. Used by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --test: also what the tests need (Chromium for the browser tests, systemd-analyze).
for_tests=0
[ "${1:-}" = "--test" ] && for_tests=1

# 1. System packages: the tools and the servers of the embedded default, Node.js and npm
#    for building the web page, and Chromium for the browser tests.
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "$for_tests" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
# systemd-analyze checks the units (tests/unit/test_systemd_units.py); it runs without a
# running systemd.
if [ "$for_tests" = 1 ] && ! command -v systemd-analyze >/dev/null 2>&1; then
  missing+=(systemd)
fi
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v aria2c >/dev/null 2>&1 || missing+=(aria2)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing: ${missing[*]}"
    say "install them first, e.g.: sudo apt-get install ${missing[*]}"
    exit 1
  fi
fi

# Vite 7 needs Node.js 20.19 or newer (Debian 13 has it; Debian 12's nodejs is 18).
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  say "building the web page needs Node.js 20.19 or newer; node is $(node --version)"
  say "install Node.js 20.19 or newer (Debian 13's nodejs package is), then run this again"
  exit 1
fi

# 2. Python 3.11 or newer, and the virtualenv.
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "mediad needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)"
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.mediad-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing mediad and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -c 'import mediad, yt_dlp, asyncpg, socketio, pytest, playwright' || {
    say "the Python install failed (see above)"
    exit 1
  }
  touch "$stamp"
fi
