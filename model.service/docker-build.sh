#!/usr/bin/env bash
# Build and tag the model.service image, exactly as docker compose does (same name, tag and build args).
# Usage: ./docker-build.sh [docker compose build options], e.g. --no-cache.
# Environment: IMAGE_PREFIX, IMAGE_TAG and the base-image variables (.env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
exec docker compose build "$@" model.service
