#!/usr/bin/env bash
# Renders an HTML report (distill report, or a reproduce work directory's *-report.html) to a PNG with headless
# Chromium (Debian's `chromium` package), to look at it or attach it to a review.
#
#     Scripts/render_report.sh runs/hinton-mnist-quick-report.html report.png [height]
set -euo pipefail
html=$1
png=$2
height=${3:-4000}
command -v chromium > /dev/null || { echo "chromium not found: apt-get install -y chromium" >&2; exit 1; }
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1240,"$height" \
    --screenshot="$png" "file://$(cd "$(dirname "$html")" && pwd)/$(basename "$html")" 2> /dev/null
test -s "$png" || { echo "no PNG written" >&2; exit 1; }
echo "wrote $png"
