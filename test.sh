#!/usr/bin/env bash
# The test suite, on a fresh machine with only Rust and Debian's package tools: installs
# what the tests need when it is missing (cargo-nextest, Chromium and its driver, CJK
# fonts, an OpenAPI validator from npm), starts PostgreSQL when it is installed but down,
# and runs every test. Without a PostgreSQL installation the PostgreSQL variants are
# skipped, and this says so.
# Extra arguments go to `cargo nextest run` (e.g. `./test.sh --test acceptance`).
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\n== %s\n' "$*"; }

# Root installs directly; anyone else through sudo when there is one.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "cannot install packages (not root, no sudo): $*" >&2; return 1
  fi
}
apt_updated=
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root apt-get install -y -qq "$@" >/dev/null
}

say "cargo-nextest"
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
cargo nextest --version

say "browser for the UI tests"
# Debian's Chromium and its driver (no browser can be downloaded any other way), and CJK
# fonts so the Japanese pages render in the screenshots.
if ! command -v chromedriver >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then
  apt_install chromium chromium-driver fonts-noto-cjk
fi
chromium --version
chromedriver --version

say "OpenAPI and JSON Schema validators, and axe-core for the accessibility checks"
# Independent checks: /api/v1/openapi.json against the OpenAPI 3.1 specification, every
# request and answer of the API tests against the document's schemas, and every page of
# the UI by axe-core injected into the browser.
if ! [ -f target/npm/node_modules/@seriousme/openapi-schema-validator/index.js ] \
  || ! [ -f target/npm/node_modules/ajv/dist/2020.js ] \
  || ! [ -f target/npm/node_modules/axe-core/axe.min.js ]; then
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  npm install --prefix target/npm --no-save --no-audit --no-fund \
    @seriousme/openapi-schema-validator@2.11.0 ajv@8.17.1 axe-core@4.11.0 >/dev/null
fi
node --version

say "PostgreSQL"
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  echo "using TEST_DATABASE_URL as given"
elif command -v pg_ctlcluster >/dev/null 2>&1 || ls /etc/postgresql/*/main >/dev/null 2>&1; then
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    for version in $(ls /etc/postgresql 2>/dev/null); do
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432
  # Each PostgreSQL test makes a database of its own (flowbot_t_<hex>); drop those of earlier runs.
  psql -h 127.0.0.1 -U postgres -tAc "SELECT datname FROM pg_database WHERE datname ~ '^flowbot_t_[0-9a-f]+$'" \
    | while read -r db; do [ -n "$db" ] && psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS \"$db\"" || true; done
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'flowbot_test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE flowbot_test"
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/flowbot_test"
else
  echo "NOTICE: PostgreSQL is not installed: the PostgreSQL variants are skipped" \
       "(apt-get install postgresql, or set TEST_DATABASE_URL, to run them)"
fi

say "tests"
cargo nextest run --workspace --no-fail-fast "$@"
