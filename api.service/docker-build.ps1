# Build and tag the api.service image, exactly as docker compose does (same name, tag and build args).
# Usage: ./docker-build.ps1 [docker compose build options], e.g. --no-cache.
& (Join-Path $PSScriptRoot '../scripts/docker-build.ps1') @args api.service
exit $LASTEXITCODE
