#!/bin/sh
# Build a base image from Debian's package archive, for machines that cannot reach an image
# registry (deploy/image_check.py; deploy/README.md):
#
#   deploy/docker/base_image.sh IMAGE PACKAGES...
#   deploy/docker/base_image.sh tad-python-base:bookworm python3 python3-venv ca-certificates
#   docker build --build-arg PYTHON_BASE=tad-python-base:bookworm .
#
# mmdebstrap makes a minimal Debian bookworm root file system with the packages (~20 s), and
# `docker import` turns it into an image. With python3 and python3-venv it stands in for the
# official python:3.11-slim-bookworm image the Dockerfile uses by default (same Debian release,
# Python 3.11); with redis-server it stands in for the redis image of docker-compose.yml.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 IMAGE PACKAGE..." >&2
    exit 2
fi
image=$1
shift
command -v mmdebstrap >/dev/null || { echo "$0: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 1; }
docker=${DOCKER:-docker}
packages=$(echo "$@ usr-is-merged" | tr ' ' ',')
# Then keep only what the named packages need: everything else minbase marked as installed by
# hand goes, and so does usrmerge (usr-is-merged stands for it), which pulls in perl (~47 MB).
export TAD_BASE_KEEP="$* usr-is-merged"
mmdebstrap --quiet --variant=minbase --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" sh -c "apt-mark auto \$(apt-mark showmanual) >/dev/null &&
        apt-mark manual $TAD_BASE_KEEP >/dev/null && apt-get purge -y -qq usrmerge >/dev/null &&
        apt-get -o APT::AutoRemove::SuggestsImportant=false \
            -o APT::AutoRemove::RecommendsImportant=false autoremove --purge -y -qq >/dev/null"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm - | $docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/sh"]' \
    - "$image"
