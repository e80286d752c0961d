#!/usr/bin/env bash
# One entry point for a fresh Debian machine: installs what is missing
# (Debian packages, a virtualenv, cardos itself), then runs the job.
#   ./dev.sh demo   a demo card created, topped up and used (in-process reader)
#   ./dev.sh test   the whole test suite (starts its own pcscd + vpcd)
#   ./dev.sh bench  the benchmarks (cardos bench; docs/performance.md)
#   ./dev.sh setup  only install
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(python3 python3-venv python3-dev gcc swig pkg-config
              pcscd libpcsclite1 libpcsclite-dev vsmartcard-vpcd pcsc-tools opensc
              vsmartcard-vpicc python3-virtualsmartcard python3-pycryptodome)  # the last three: vicc for cardos bench
VENV=.venv

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_debian_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 2; }
    sudo=sudo
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_python_env() {
  local stamp="$VENV/.cardos-installed"
  local want
  want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing cardos and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    echo "$want" > "$stamp"
  fi
}

setup() {
  install_debian_packages
  install_python_env
}

case "${1:-}" in
  setup) setup ;;
  demo) setup; shift; exec "$VENV/bin/cardos" demo "$@" ;;
  test) setup; shift
        # as root the suite starts its own pcscd: PC/SC tests must run, never be skipped
        if [ "$(id -u)" -eq 0 ]; then export CARDOS_REQUIRE_PCSC="${CARDOS_REQUIRE_PCSC:-1}"; fi
        exec "$VENV/bin/python" -m pytest "$@" ;;
  bench) setup; shift; exec "$VENV/bin/cardos" bench "$@" ;;
  *) echo "usage: $0 demo|test|bench|setup [args...]" >&2; exit 2 ;;
esac
