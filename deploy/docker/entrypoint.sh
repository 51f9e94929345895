#!/bin/sh
# Entry point of the service images (Dockerfile: runtime, gpu).
#
# If the model directory ($TAD_MODEL_DIR) holds no bundle, copy in the bundles baked into the
# image ($TAD_SEED_MODEL_DIR: the demo bundle), so the first `docker compose up` on an empty
# volume serves at once; then run the command (`tad serve`). A directory that already has a
# bundle is never touched. Each bundle is copied to a hidden temporary directory first and
# then renamed into place (atomic), so replicas starting together on one shared volume never
# see half a bundle and never copy twice.
#
# tests/deploy runs this script with the environment docker-compose.yml gives the container.
set -eu

model_dir="${TAD_MODEL_DIR:-models}"
seed_dir="${TAD_SEED_MODEL_DIR:-}"

has_bundles() {
    for manifest in "$1"/*/manifest.json; do
        [ -f "$manifest" ] && return 0
    done
    return 1
}

seed() {
    mkdir -p "$model_dir" 2>/dev/null || true
    if ! tmp=$(mktemp -d "$model_dir/.seed.XXXXXX" 2>/dev/null); then
        echo "tad-entrypoint: $model_dir is empty and not writable: mount a writable volume" \
             "there or put a bundle in it" >&2
        return 0
    fi
    cp -R "$seed_dir"/. "$tmp"/
    for bundle in "$tmp"/*/; do
        [ -f "$bundle/manifest.json" ] || continue
        name=$(basename "$bundle")
        if mv -T "$bundle" "$model_dir/$name" 2>/dev/null; then
            echo "tad-entrypoint: seeded $model_dir/$name from $seed_dir" >&2
        fi
    done
    rm -rf "$tmp"
}

if [ -n "$seed_dir" ] && [ -d "$seed_dir" ] && ! has_bundles "$model_dir"; then
    seed
fi

exec "$@"
