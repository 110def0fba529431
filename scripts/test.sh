#!/usr/bin/env bash
# Installs what the test suite needs and runs it: formatting, lints, every
# unit test and the end-to-end tests against the real binaries.
#
# Usage: scripts/test.sh            (as root or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use. Services (nats-server, etcd, janus) join
# this list as the features that need them land.
PACKAGES=(pkg-config openssl iproute2 systemd python3-venv nats-server etcd-server janus nextcloud-spreed-signaling)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "cargo is required: install Rust from your distribution or rustup" >&2
  exit 1
fi

JOBS="${CARGO_BUILD_JOBS:-2}"
# The build needs no system protoc: proto/build.rs parses the protos with
# protox, and etcd is spoken to through its JSON gateway. Pointing prost
# at a missing protoc makes any regression fail the build.
export PROTOC=/nonexistent/protoc
# A clean clone gains nothing from incremental state, which would take
# several GB of a CI machine's disk.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
  df -h . || true
fi
cargo fmt --all -- --check
cargo clippy -j"$JOBS" --workspace --all-targets -- -D warnings
# The end-to-end tests start the real binaries, so build them first.
cargo build -j"$JOBS" --workspace --bins
cargo test -j"$JOBS" --workspace --no-fail-fast
# The Helm chart: rendered, validated and scanned (deploy/helm/check.py).
scripts/helm-check.sh
[ -z "${CI:-}" ] || df -h . || true
