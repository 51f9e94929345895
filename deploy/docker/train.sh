#!/bin/sh
# Entry point of the trainer image: `docker compose --profile train run --rm train [OPTIONS]`
# where OPTIONS are `tad train` options other than --out (docker-compose.yml gives defaults).
#
# Trains into a hidden staging directory of the models volume, then renames every finished
# bundle into $TAD_MODEL_DIR/<name>-<version> (atomic), so a serving replica never reads half a
# bundle and the version it serves stays on disk. The service switches to the new version on
# `POST /v1/models/reload` or SIGHUP, keeping every stream's state (deploy/README.md).
set -eu

model_dir="${TAD_MODEL_DIR:-/models}"
case "${1:-}" in
    -h|--help)
        exec tad train --help
        ;;
esac
mkdir -p "$model_dir/.staging"
run=$(mktemp -d "$model_dir/.staging/run.XXXXXX")
trap 'rm -rf "$run"' EXIT INT TERM
tad train --out "$run" "$@"
for bundle in "$run"/*/; do
    [ -f "$bundle/manifest.json" ] || continue
    version=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
        "$bundle/manifest.json")
    target="$model_dir/$(basename "$bundle")-$version"
    mv -T "$bundle" "$target"
    echo "tad-train-bundle: $target is ready; load it with POST /v1/models/reload (or SIGHUP)"
done
