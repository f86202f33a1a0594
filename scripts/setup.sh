#!/usr/bin/env bash
# Shared set-up for scripts/test and scripts/drill: a virtualenv in .venv with paystab and
# its Python dependencies. With --system, also the Debian packages the real-part tests use
# (prometheus, alertmanager, docker.io, iptables, wrk, nginx, chromium, postgresql) and a running dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# The main job needs the runtime dependencies only; the test suite adds the dev extras
# (pytest, mypy, ruff, the PSP SDKs the compatibility tests drive).
if [ "${1:-}" = "--system" ]; then extras="[dev]"; stamp=.venv/.paystab-installed-dev
else extras=""; stamp=.venv/.paystab-installed; fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # pip's and the build backend's chatter goes to a log, shown only when the install fails
  if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras"; } \
       >.venv/install.log 2>&1; then
    cat .venv/install.log >&2
    echo "setup: installing paystab's Python dependencies failed (log: .venv/install.log)" >&2
    exit 4
  fi
  touch "$stamp"
  [ -z "$extras" ] || touch .venv/.paystab-installed  # the dev install holds the runtime one
fi

# Bytecode for paystab's own modules, as an install from a wheel has it: every paystab
# process (and each of the hundreds the tests start) then starts without compiling them,
# also where PYTHONDONTWRITEBYTECODE keeps Python from caching them itself. Up-to-date files
# are skipped; an edited one is compiled again here.
.venv/bin/python -m compileall -q -j 0 paystab

if [ "${1:-}" = "--system" ]; then
  need=()
  command -v prometheus >/dev/null || need+=(prometheus)
  command -v promtool >/dev/null || need+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v iptables >/dev/null || need+=(iptables)
  command -v wrk >/dev/null || need+=(wrk)
  command -v nginx >/dev/null || need+=(nginx-light)
  # PostgreSQL for the example shop's orders table: Debian keeps initdb off PATH
  command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    if [ "$(id -u)" != 0 ]; then
      echo "setup: need root to apt-get install ${need[*]}" >&2; exit 4
    fi
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  fi
  # dockerd: start one when none answers (root only); the tests build their own image.
  if command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      echo "setup: starting dockerd"
      mkdir -p /var/log
      nohup dockerd --iptables=false --ip6tables=false >/var/log/paystab-dockerd.log 2>&1 &
      for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
      docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/paystab-dockerd.log" >&2; tail -20 /var/log/paystab-dockerd.log >&2 || true; }
    fi
  fi
fi
