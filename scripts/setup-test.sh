#!/usr/bin/env bash
# What the tests need on top of `scripts/setup.sh --run` (run as root, or with sudo): the real
# clients that check our output (skopeo, umoci, podman), the registry, the tools tests use to make
# signed apt repos, htpasswd files, certificates and static test binaries, and chromium for the
# HTML report's test. Then the npm dependencies, dev ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
bash scripts/setup.sh --run --system-only
$SUDO apt-get install -y -qq --no-install-recommends \
  skopeo umoci podman docker-registry gnupg dpkg-dev apache2-utils openssl gcc libc6-dev chromium >/dev/null
npm ci --no-audit --no-fund
