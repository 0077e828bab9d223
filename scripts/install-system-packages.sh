#!/usr/bin/env bash
# Install the Debian packages listed in scripts/system-packages.txt that are not yet installed.
# Needs root (or sudo) and apt; on a machine without apt it says what to install and goes on.
set -euo pipefail
list="$(dirname "$0")/system-packages.txt"
wanted=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | tr -s '[:space:]' ' ')
[ -n "${wanted// /}" ] || exit 0
missing=()
for package in $wanted; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "please install these packages: ${missing[*]}" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
