#!/usr/bin/env bash
# Installs, idempotently, the Debian packages tabswarm's tests and commands use:
#   chromium               headless browser workers (Playwright drives /usr/bin/chromium)
#   dataset-fashion-mnist  the reference experiment's data set (/usr/share/datasets/fashion-mnist)
#   zookeeper              Apache ZooKeeper for chain replication and its tests (tabswarm zk;
#                          pulls libzookeeper-java and a JRE, default-jre)
# Packages already present are left alone; apt-get runs only when something is missing.
# Without root it prints exactly what to install and exits non-zero.
# With arguments, only the packages named (`tabswarm start` asks for chromium alone).
set -euo pipefail

declare -A need=(
  [chromium]=/usr/bin/chromium
  [dataset-fashion-mnist]=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
  [zookeeper]=/usr/share/java/zookeeper.jar
)

wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then wanted=("${!need[@]}"); fi
for pkg in "${wanted[@]}"; do
  if [ -z "${need[$pkg]+set}" ]; then
    echo "install-system-deps.sh: unknown package '$pkg' (known: ${!need[*]})" >&2
    exit 2
  fi
done

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || [ ! -e "${need[$pkg]}" ]; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system deps: all present (${wanted[*]})"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "system deps missing: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "system deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
