#!/bin/sh
# Make sure git-lfs is installed: through apt-get where it is missing, else say how.
set -e
if command -v git-lfs >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "git-lfs is missing and installing it needs root: run 'sudo apt-get install -y git-lfs'" >&2
      exit 1
    fi
  fi
  echo "installing git-lfs with apt-get" >&2
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git-lfs >/dev/null
  exit 0
fi
echo "git-lfs is missing: install it from your package manager (e.g. 'brew install git-lfs', 'dnf install git-lfs')" >&2
exit 1
