#!/usr/bin/env bash
# Build and tag the ui.service image, exactly as docker compose does (same name, tag and build args).
# Usage: ./docker-build.sh [docker compose build options], e.g. --no-cache.
# Environment: IMAGE_PREFIX, IMAGE_TAG and the base-image variables (.env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/vendor-ui-runtime  # html/vendor/: the on-device runtime from npm (pinned)
exec docker compose build "$@" ui.service
