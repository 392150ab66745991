#!/usr/bin/env bash
# Debian fallbacks for the PDF export and its tests. MathJax comes from the Python package
# jupyter-server-mathjax and the browser from Playwright, Chrome or Edge; only when
# `python -m tools.pdf` finds no browser is Debian's chromium installed. poppler-utils gives the
# PDF tests `pdfimages` (they skip without it).
set -euo pipefail
PY=${PY:-.venv/bin/python}
pkgs=(poppler-utils)
# A venv that cannot tell (not built yet) counts as "no browser".
if ! "$PY" -c "from tools.pdf import which_browser; which_browser()" >/dev/null 2>&1; then
  pkgs+=(chromium)
fi
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
else
  for p in "${pkgs[@]}"; do
    case $p in
      chromium) missing+=("$p") ;;
      poppler-utils) command -v pdfimages >/dev/null || missing+=("$p") ;;
    esac
  done
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  for p in "${missing[@]}"; do
    case $p in
      chromium) echo "warning: no Chrome, Chromium or Edge for the PDF: run" \
                     "\`$PY -m playwright install chromium\` (or install Chrome)." >&2 ;;
      poppler-utils) echo "note: poppler (pdfimages) is missing, so the PDF figure tests skip" \
                          "(Debian: apt-get install poppler-utils; macOS: brew install poppler)." >&2 ;;
    esac
  done
  exit 0
fi
echo "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
