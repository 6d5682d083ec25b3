#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the app needs, only those that are missing.
#   scripts/install-system-deps.sh          what `make run` needs: ffmpeg, Python venv support
#   scripts/install-system-deps.sh --test   plus what `make test` needs
set -euo pipefail

want_test=false
[[ "${1:-}" == "--test" ]] && want_test=true

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
    missing_python=true
else
    missing_python=false
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "error: $("$python" --version 2>&1) is too old; Python 3.11 or newer is needed (set PYTHON=python3.12, for example)." >&2
        exit 1
    fi
fi

packages=()
$missing_python && packages+=(python3 python3-venv)
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || packages+=(ffmpeg)
# Debian's python3 ships without ensurepip until python3-venv is installed.
if ! $missing_python && ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    packages+=("python3-venv")
fi
if $want_test; then
    command -v curl >/dev/null 2>&1 || packages+=(curl)          # live-server tests
    command -v wavpack >/dev/null 2>&1 || packages+=(wavpack)    # hybrid WavPack files (ffmpeg cannot make them)
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || packages+=(nginx-light)  # X-Accel-Redirect test
    # Browser tests (Playwright drives the system Chromium). Debian ships it as "chromium";
    # where apt has no such package (Ubuntu's is a snap), the browser test skips and says why.
    if [[ ! -x /usr/bin/chromium ]]; then
        os_id=$(. /etc/os-release 2>/dev/null && echo "${ID:-}")
        if [[ $os_id == debian ]] || { command -v apt-cache >/dev/null 2>&1 && apt-cache show chromium >/dev/null 2>&1; }; then
            packages+=(chromium)
        fi
    fi
fi

if ((${#packages[@]} == 0)); then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: please install: ${packages[*]} (no apt-get on this system)" >&2
    exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "error: run as root or install sudo to install: ${packages[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "Installing system packages: ${packages[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
