"""Where an entity's bundle lives under a models directory: one safe directory name each."""

from __future__ import annotations

import re


def bundle_dir_name(entity: str) -> str:
    """Entity names like 'realKnownCause/nyc_taxi' become safe directory names.

    >>> bundle_dir_name("realKnownCause/nyc taxi")
    'realKnownCause__nyc__taxi'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "__", entity)
