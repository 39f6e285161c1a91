#!/usr/bin/env bash
# Installs what the web app and its browser tests need: Debian's Chromium
# (never a downloaded browser build), a CJK font so screenshots show Chinese
# text, and the npm packages of web/. Idempotent: safe to run on every CI run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

pkgs=()
if [ ! -x /usr/bin/chromium ]; then pkgs+=(chromium); fi
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then pkgs+=(fonts-wqy-microhei); fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  $SUDO apt-get update
  $SUDO apt-get install -y "${pkgs[@]}"
fi

cd "$here/web"
npm ci --no-audit --no-fund
