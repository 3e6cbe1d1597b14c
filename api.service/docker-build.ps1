# Build and tag the api.service image, exactly as docker compose does (same name, tag and build args).
# Usage: ./docker-build.ps1 [docker compose build options], e.g. --no-cache.
# Environment: IMAGE_PREFIX, IMAGE_TAG and the base-image variables (.env.example).
$ErrorActionPreference = 'Stop'
Push-Location (Join-Path $PSScriptRoot '..')
try {
    docker compose build @args api.service
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
} finally {
    Pop-Location
}
