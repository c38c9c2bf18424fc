#!/usr/bin/env bash
# What building images with layerfold needs on a Debian/Ubuntu machine (run as root, or with
# sudo): layer and archive codecs (zstd, xz, bzip2), gpgv and the Debian archive keyring (apt
# signatures), git (git sources), python3 (packages without a wheel), CA certificates. Then, in a
# checkout, the npm dependencies.
#   --run          also what `layerfold run`, `shell` and `check` need: runc, containers-common's
#                  seccomp profile, newuidmap (uidmap)
#   --system-only  no npm (the GitHub Action installs the package instead)
# scripts/setup-test.sh adds what the tests need (podman, skopeo, a registry, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
packages=(zstd xz-utils bzip2 gpgv debian-archive-keyring ca-certificates git python3)
npm=1
for arg in "$@"; do
  case "$arg" in
    --run) packages+=(runc golang-github-containers-common uidmap) ;;
    --system-only) npm=0 ;;
    *) echo "scripts/setup.sh: unknown option $arg (known: --run, --system-only)" >&2; exit 2 ;;
  esac
done
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
[ "$npm" = 1 ] || exit 0
npm ci --no-audit --no-fund
echo "layerfold is ready: node bin/layerfold.mjs --help (scripts/setup-test.sh for the tests)"
