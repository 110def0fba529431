# Shared by the benchmark scripts (sourced, not run).

# Installs Debian packages that are missing (root or sudo).
ensure_packages() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

# Where the server and the load generator are; BENCH_BIN_DIR points at
# binaries built earlier (a run then never rebuilds while it measures).
BIN_DIR="${BENCH_BIN_DIR:-target/release}"

# Builds the server and the load generator (a no-op when up to date).
build_release() {
  [ -n "${BENCH_BIN_DIR:-}" ] && return 0
  cargo build --release -j"${CARGO_BUILD_JOBS:-2}" -p signaling -p tests --bins
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# write_config FILE PORT NATS_URL: one node, allowall backend for the
# load generator's emulator.
write_config() {
  cat > "$1" <<CONF
[http]
listen = 127.0.0.1:$2
[sessions]
hashkey = 0123456789abcdef0123456789abcdef
blockkey = 0123456789abcdef
[backend]
allowall = true
secret = bench-secret
timeout = 10
[nats]
url = $3
CONF
}

# wait_ready PORT: until /api/v1/welcome answers (at most 10 s).
wait_ready() {
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$1/api/v1/welcome" >/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2
  return 1
}

# The reference 1.2.4 from the bookworm-backports suite, unpacked under
# target/reference-1.2.4 (the system's apt configuration is not touched:
# a throw-away source list with the mirror this machine already uses).
# Prints the path of its server binary.
REFERENCE_124_VERSION="1.2.4-1~bpo12+1"
ensure_reference_124() {
  local root="$PWD/target/reference-1.2.4"
  local bin="$root/usr/bin/nextcloud-spreed-signaling-server"
  if [ ! -x "$bin" ]; then
    local work uri
    work=$(mktemp -d)
    uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    echo "deb $uri bookworm-backports main" > "$work/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
    apt-get "${opts[@]}" update >&2
    (cd "$work" && apt-get "${opts[@]}" download "nextcloud-spreed-signaling=$REFERENCE_124_VERSION" >&2)
    mkdir -p "$root"
    dpkg-deb -x "$work"/nextcloud-spreed-signaling_*.deb "$root"
    rm -rf "$work"
  fi
  echo "$bin"
}
