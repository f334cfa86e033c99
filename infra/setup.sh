#!/usr/bin/env bash
# Set up everything cryptolake needs on a fresh Linux machine with Python 3.11 and Java 17:
# uv (from PyPI), the locked virtual environment, the JVM jars (Maven Central, via infra/pom.xml)
# and the Airflow metadata database. Idempotent: a warm run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.8"
log() { printf '{"ts":"%s","level":"info","logger":"setup","event":"%s"}\n' "$(date -u +%FT%TZ)" "$*" >&2; }

if ! command -v uv >/dev/null 2>&1 || [[ "$(uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]]; then
  if [[ ! -x .state/tools/bin/uv ]]; then
    log "installing uv $UV_VERSION from PyPI"
    python3.11 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target .state/tools/lib "uv==$UV_VERSION" \
      || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target .state/tools/lib "uv==$UV_VERSION"
    mkdir -p .state/tools/bin && ln -sf "$PWD/.state/tools/lib/bin/uv" .state/tools/bin/uv
  fi
  export PATH="$PWD/.state/tools/bin:$PATH"
fi
command -v java >/dev/null || { echo "Java 17+ is required (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "Maven is required (apt-get install maven)" >&2; exit 1; }

# Debian packages the tests and the stack use: PostgreSQL (a real server for the store tests, started on a
# free port by the test set-up), Chromium (headless, for Playwright; never a downloaded browser) and
# Prometheus (scrapes every process in the monitoring test). Installed only when missing.
need_deb=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_deb+=(postgresql)
command -v chromium >/dev/null 2>&1 || need_deb+=(chromium)
command -v prometheus >/dev/null 2>&1 || need_deb+=(prometheus)
if (( ${#need_deb[@]} )); then
  sudo_cmd=""; [[ "$(id -u)" == 0 ]] || sudo_cmd="sudo"
  log "installing Debian packages: ${need_deb[*]}"
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_deb[@]}" >/dev/null \
    || { $sudo_cmd apt-get update -qq >/dev/null && $sudo_cmd env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends "${need_deb[@]}" >/dev/null; }
fi

log "uv sync (locked)"
uv sync --frozen --quiet --compile-bytecode  # CI sets PYTHONDONTWRITEBYTECODE: without .pyc every process compiles its imports
log "resolving JVM jars"
.venv/bin/python -m infra.jars
log "airflow db migrate"
.venv/bin/python -m infra.airflow_home
log "setup complete"
