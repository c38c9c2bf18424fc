#!/usr/bin/env bash
# One-command set-up on a fresh Debian machine (run as root, or with sudo):
# the system tools layerfold drives, then the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  zstd xz-utils bzip2 gpgv gnupg debian-archive-keyring ca-certificates git gcc libc6-dev python3 \
  skopeo umoci podman runc golang-github-containers-common docker-registry uidmap apache2-utils openssl dpkg-dev chromium >/dev/null
npm ci --no-audit --no-fund
echo "layerfold is ready: npx layerfold --help"
