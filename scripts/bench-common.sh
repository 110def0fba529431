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

# Builds the server and the load generator (a no-op when up to date).
build_release() {
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
