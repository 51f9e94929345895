"""Train the demo bundle into a directory: the Docker build's `demo` stage (needs torch).

    python deploy/docker/demo_bundle.py /opt/tad/seed-models

The same builder `tad serve --demo` uses (service.demo.ensure_demo_bundle). The runtime image
has no torch, so the bundle is made at build time and copied into an empty model volume when a
container starts (deploy/docker/entrypoint.sh). tests/deploy runs this script to make the seed
directory of its loopback stack.
"""

from __future__ import annotations

import sys
from pathlib import Path

from detector.bundle import load_bundle
from service.demo import ensure_demo_bundle


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    made = ensure_demo_bundle(out)
    if made is None:
        print(f"{out} already has bundles; nothing trained", file=sys.stderr)
        return 0
    bundle = load_bundle(made)  # refuses a bundle the service would refuse
    print(f"demo bundle {bundle.name} {bundle.version} in {made}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
