#!/usr/bin/env bash
# Installs what FedKit needs from the system when it is missing (Debian, as root),
# or stops with a message saying exactly what to install.
#   scripts/setup.sh          what building and running FedKit needs
#   scripts/setup.sh --test   that, plus what the test suite needs
set -euo pipefail

# Debian package -> a file or command that shows it is there.
runtime=(
    "libopenblas-dev:/usr/include/x86_64-linux-gnu/cblas.h"
    "openssl:/usr/bin/openssl"
    "libturbojpeg0-dev:/usr/include/turbojpeg.h"
    "zlib1g-dev:/usr/include/zlib.h"
)
testing=(
    "chromium:/usr/bin/chromium"
    "gcc:/usr/bin/gcc"
    "openssl:/usr/bin/openssl"
    "libprotobuf-c-dev:/usr/include/protobuf-c/protobuf-c.h"
    "protobuf-c-compiler:/usr/bin/protoc-c"
    "libssl-dev:/usr/include/openssl/evp.h"
    "iproute2:/usr/bin/ip"
    "python3-yaml:/usr/lib/python3/dist-packages/yaml/__init__.py"
    "libjpeg-turbo-progs:/usr/bin/djpeg"
)

need=()
check() {
    local pkg=${1%%:*} probe=${1#*:}
    if [ ! -e "$probe" ] && ! dpkg -s "$pkg" >/dev/null 2>&1; then need+=("$pkg"); fi
}
for entry in "${runtime[@]}"; do check "$entry"; done
if [ "${1:-}" = "--test" ]; then
    for entry in "${testing[@]}"; do check "$entry"; done
fi

if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${need[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "setup: FedKit needs these Debian packages: ${need[*]}" >&2
        echo "setup: install them with: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi
command -v swift >/dev/null 2>&1 || { echo "setup: Swift 6 is required (https://www.swift.org/install/)" >&2; exit 1; }
