"""Models: list serving and available bundle versions; reload the model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from service.auth import AdminKey, ApiKey
from service.deps import Services, ServicesDep
from service.responses import OrjsonResponse, errors
from service.schemas import ModelList, ReloadResult

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[ApiKey])


def model_list(services: Services) -> dict[str, Any]:
    scan = services.registry.last_scan
    active = {m.bundle.content_hash for m in services.registry.active.values()}
    models = []
    for bundle, when in sorted(scan.bundles, key=lambda b: (b[0].name, b[1]), reverse=True):
        params = bundle.calibration.params
        models.append(
            {
                "name": bundle.name,
                "version": bundle.version,
                "created_at": when.isoformat(),
                "content_hash": bundle.content_hash,
                "active": bundle.content_hash in active,
                "channels": list(bundle.calibration.channel_names),
                "window_size": bundle.calibration.window_size,
                "alpha": params.alpha,
                "threshold": params.threshold,
                "false_alarms_per_10k": bundle.manifest.get("alarm", {}).get(
                    "false_alarms_per_10k"
                ),
                "directory": bundle.path.name,
            }
        )
    # directory names only: the server's filesystem layout is nobody's business
    refused = [{"directory": Path(p).name, "reason": r} for p, r in scan.refused]
    return {"models": models, "refused": refused}


@router.get("", response_model=ModelList, responses=errors(401))
async def list_models(services: ServicesDep) -> OrjsonResponse:
    """Every valid bundle in the model directory (newest first per name), and refused ones."""
    return OrjsonResponse(model_list(services))


@router.post(
    "/reload", response_model=ReloadResult, responses=errors(401, 403, 503), dependencies=[AdminKey]
)
async def reload_models(services: ServicesDep) -> OrjsonResponse:
    """Rescan the model directory (also on SIGHUP). Streams keep their state; a refused bundle
    is reported and the running version stays."""
    report = await services.reload()
    return OrjsonResponse(model_list(services) | {"changed": report.changed})
