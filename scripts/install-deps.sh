#!/usr/bin/env bash
# Installs every Debian 12 package that Turbine's build, tests and benchmarks need.
# Idempotent: when everything is present it only runs dpkg-query and exits (well under a second).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config git ccache
  # libraries (build)
  libcli11-dev nlohmann-json3-dev libxxhash-dev libspdlog-dev libfmt-dev
  libopenblas-dev libpcre2-dev libicu-dev libboost-dev libboost-system-dev
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-numpy python3-jinja2 python3-zmq python3-msgpack
  etcd-server etcd-client curl gnuplot-nox
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# Node.js and npm (for the end-to-end tests with the official openai client): Debian's nodejs and
# npm, unless a node with npm is already on the machine (e.g. a nodesource build, which conflicts).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  for p in nodejs npm; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
