#!/usr/bin/env bash
# Debian packages for the PDF export and the browser test: Chromium, local MathJax, poppler.
set -euo pipefail
pkgs=(chromium libjs-mathjax fonts-mathjax poppler-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "warning: missing ${missing[*]} and not root on Debian: the PDF export and the browser" \
       "test will be skipped. Install them with: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
echo "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
