#!/usr/bin/env bash
# Make the browser test runnable: Debian's chromium and chromium-driver (never a browser
# downloaded by a test tool), plus a CJK font so that screenshots show Chinese text.
# Needs root when the packages are missing; does nothing when they are there.
#     .ci/browser.sh && .venv/bin/pytest -q -m browser tests/service
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian packages)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
fi
dpkg-query -W chromium chromium-driver >&2
