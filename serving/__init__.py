"""Ray Serve: per-site model servers, the OpenAI-compatible gateway, and the real city that
implements `edgeagents.core.env.Environment`. Depends on `edgeagents`.

Configs import eagerly (pydantic only); everything that needs Ray, FastAPI or torch loads on
first attribute access, so `import serving` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from serving.config import (
    BACKEND_FOR_KIND,
    CityAppConfig,
    GatewayConfig,
    ModelServerConfig,
    server_app_name,
    site_resource,
)

_LAZY = {
    "Gateway": "serving.gateway",
    "OpenAIError": "serving.protocol",
    "ModelServer": "serving.server",
    "ServerStats": "serving.server",
    "RayServeCity": "serving.city",
    "build_gateway_app": "serving.app",
    "build_model_server_app": "serving.app",
    "deploy_city": "serving.app",
    "create_engine": "serving.engines",
    "Calibration": "serving.calibration",
    "calibrate": "serving.calibration",
    "calibrated_scenario": "serving.calibration",
    "SentPrompt": "serving.loadgen",
    "replay": "serving.replay",
    "replay_workload": "serving.replay",
    "Fidelity": "serving.replay",
    "ServeReport": "serving.cli",
    "run_serve": "serving.cli",
}

__all__ = [
    "BACKEND_FOR_KIND",
    "CityAppConfig",
    "GatewayConfig",
    "ModelServerConfig",
    "server_app_name",
    "site_resource",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'serving' has no attribute {name!r}")
