#!/usr/bin/env bash
# Installs what the xiaotong-channels tests need: a real SMTP server
# (Python's aiosmtpd). Idempotent and non-interactive.
set -euo pipefail

if python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3 python3-pip
fi

# pip first (works with pyenv / virtualenv Pythons), then Debian's package
# for a system Python that refuses pip installs (PEP 668).
python3 -m pip install --quiet --disable-pip-version-check aiosmtpd 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages aiosmtpd 2>/dev/null \
  || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-aiosmtpd
  }

python3 -c 'import aiosmtpd' || {
  echo "setup-channels: aiosmtpd could not be installed" >&2
  exit 1
}
