"""Serve applications: the gateway ingress and one app per (model, site) server.

Builders for `serve run` / `serve build` / `serve deploy` (one argument, the args dict):

    serve run serving.app:build_gateway_app scenario=bristol
    serve deploy serving/config.yaml

Each model server is its own Serve application (`<model>--<site>`, no HTTP route), so loading
or unloading one model on one site never restarts the gateway or the other servers. The gateway
reaches them by name with `serve.get_deployment_handle`.
"""

# No `from __future__ import annotations` here: FastAPI reads the route methods' annotations
# at class creation, through Serve's class-based view, and needs them as real types.
import logging
from collections.abc import Awaitable, Callable
from types import MethodType
from typing import Any, NamedTuple, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from ray import serve
from ray.serve import Application, RunTarget
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edgeagents.core.scenario import load_scenario
from serving.config import (
    BACKEND_FOR_KIND,
    GATEWAY_APP,
    HEAD_NODE_RESOURCE,
    SITE_RESOURCE_PREFIX,
    CityAppConfig,
    GatewayConfig,
    ModelServerConfig,
    site_resource,
)
from serving.gateway import Gateway
from serving.protocol import OpenAIError
from serving.server import ModelServer

logger = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def create_api() -> FastAPI:
    """The FastAPI app of the gateway, with every error answered as OpenAI-style JSON."""
    api = FastAPI(
        title="edgeagents gateway",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,  # '/v1/models/' is a 404 as at OpenAI, not a 307 to follow
    )

    @api.exception_handler(OpenAIError)
    async def _openai_error(request: Request, exc: OpenAIError) -> Response:
        return exc.response()

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return OpenAIError(exc.status_code, str(exc.detail), code=code).response()

    @api.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return OpenAIError(400, str(exc.errors()[:1]), code="invalid_value").response()

    @api.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> Response:
        logger.exception("gateway error on %s", request.url.path)
        body = {
            "error": {
                "message": f"internal gateway error ({type(exc).__name__})",
                "type": "server_error",
                "param": None,
                "code": "internal_error",
            }
        }
        return JSONResponse(body, status_code=500)

    return api


api = create_api()


def site_nodes() -> dict[str, list[str]]:
    """Site -> ids of the live Ray nodes that offer its `site-<name>` resource."""
    import ray

    out: dict[str, list[str]] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        for key, amount in node.get("Resources", {}).items():
            if key.startswith(SITE_RESOURCE_PREFIX) and amount > 0:
                out.setdefault(key.removeprefix(SITE_RESOURCE_PREFIX), []).append(node["NodeID"])
    return out


def live_sites() -> set[str]:
    """Sites that some live Ray node offers now: the others are down."""
    return set(site_nodes())


class GatewayRoute(NamedTuple):
    """One route of the ingress: HTTP method, path, and the `GatewayIngress` function."""

    method: str
    path: str
    endpoint: Callable[..., Awaitable[Response]]


GATEWAY_ROUTES: list[GatewayRoute] = []
"""Every route of `GatewayIngress`, in the order mounted: `create_gateway_api` mounts the same
functions on an in-process app."""

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Awaitable[Response]])


def _route(method: str, path: str) -> Callable[[_Endpoint], _Endpoint]:
    """`@api.api_route(path, methods=[method])` (what `@api.post(path)` does), recorded in
    `GATEWAY_ROUTES`."""

    def mount(endpoint: _Endpoint) -> _Endpoint:
        GATEWAY_ROUTES.append(GatewayRoute(method, path, endpoint))
        return api.api_route(path, methods=[method])(endpoint)

    return mount


@serve.ingress(api)
class GatewayIngress(Gateway):
    """The gateway as a FastAPI ingress: OpenAI routes under /v1, operator notices under
    /v1/operator (bearer token), control under /admin. It watches Ray's node liveness: a
    site whose node is gone is down (`RequestRouter`)."""

    def __init__(self, config: GatewayConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config, live_sites=live_sites)

    @_route("POST", "/v1/chat/completions")
    async def _chat(self, request: Request) -> Response:
        return await self.guarded(self.chat_completions, request)

    @_route("POST", "/v1/images/generations")
    async def _images(self, request: Request) -> Response:
        return await self.guarded(self.images_generations, request)

    @_route("POST", "/v1/audio/transcriptions")
    async def _transcriptions(self, request: Request) -> Response:
        return await self.guarded(self.audio_transcriptions, request)

    @_route("GET", "/v1/models")
    async def _models(self) -> Response:
        return self.list_models()

    @_route("POST", "/v1/operator/notices")
    async def _post_notice(self, request: Request) -> Response:
        return await self.guarded(self.post_notice, request)

    @_route("GET", "/v1/operator/notices")
    async def _get_notices(self, request: Request) -> Response:
        return await self.guarded(self.get_notices, request)

    @_route("GET", "/admin/routing")
    async def _get_routing(self) -> Response:
        return JSONResponse(self.policy.model_dump())

    @_route("PUT", "/admin/routing")
    async def _put_routing(self, request: Request) -> Response:
        return await self.guarded(self.put_routing, request)

    @_route("GET", "/admin/telemetry")
    async def _telemetry(self, since_s: float = 0.0) -> Response:
        snap = await self.snapshot()
        snap["requests"] = self.records(since_s)
        return JSONResponse(snap)

    @_route("GET", "/healthz")
    async def _health(self) -> Response:
        return JSONResponse({"ok": True})


def create_gateway_api(gateway: Gateway) -> FastAPI:
    """The ingress's routes and error handlers on a fresh app, bound to `gateway`: the
    production HTTP surface in-process, without Serve or a Ray cluster (fuzzing, tests). The
    route functions use only `Gateway`'s methods, so any `Gateway` will do."""
    app = create_api()
    for route in GATEWAY_ROUTES:
        app.add_api_route(route.path, MethodType(route.endpoint, gateway), methods=[route.method])
    return app


def gateway_deployment_options(config: GatewayConfig) -> dict[str, Any]:
    """One gateway replica (exact in-flight counts) on the head node, a small CPU share, a
    deep Serve queue: back-pressure is the gateway's own 429, not Serve's."""
    return {
        "name": "Gateway",
        "num_replicas": 1,
        "max_ongoing_requests": 1000,
        "ray_actor_options": {"num_cpus": 0.1, "resources": {HEAD_NODE_RESOURCE: 0.001}},
    }


def build_gateway_app(args: GatewayConfig | dict[str, Any]) -> Application:
    """The gateway application (`serve run serving.app:build_gateway_app scenario=bristol`)."""
    config = GatewayConfig.model_validate(args)
    deployment = serve.deployment(GatewayIngress).options(**gateway_deployment_options(config))
    return deployment.bind(config.model_dump())


def build_model_server_app(args: ModelServerConfig | dict[str, Any]) -> Application:
    """One model server pinned to its site (`site-<name>` Ray resource)."""
    config = ModelServerConfig.model_validate(args)
    deployment = serve.deployment(ModelServer).options(**ModelServer.get_deployment_options(config))
    return deployment.bind(config.model_dump())


def server_configs(city: CityAppConfig) -> list[ModelServerConfig]:
    """A server config per (site, model) of the gateway's placement (or the scenario's)."""
    scenario = load_scenario(city.gateway.scenario)
    placement = city.gateway.placement
    if placement is None:
        placement = scenario.placement
    out = []
    for site, models in placement.items():
        for m in models:
            out.append(
                ModelServerConfig(
                    model=m,
                    site=site,
                    backend=BACKEND_FOR_KIND[scenario.model(m).kind],
                    weights_path=city.weights.get(m),
                    max_batch=city.max_batch,
                    num_cpus=city.num_cpus,
                    num_gpus=city.num_gpus,
                )
            )
    return out


def missing_sites(sites: list[str]) -> list[str]:
    """Sites whose `site-<name>` resource no Ray node offers (a server pinned there would wait
    for ever)."""
    import ray

    have = ray.cluster_resources()
    return [s for s in dict.fromkeys(sites) if have.get(site_resource(s), 0) <= 0]


def site_resources_hint(sites: list[str]) -> str:
    """How to give a node those sites."""
    spec = ", ".join(f'"{site_resource(s)}": 1' for s in sites)
    return f"start a Ray node with: ray start --resources '{{{spec}}}'"


def deploy_city(city: CityAppConfig | dict[str, Any]) -> Any:
    """Run every server app and the gateway (route prefix `/`) together, wait until all are
    RUNNING; the gateway's handle. Raises ValueError first if a site has no Ray node."""
    city = CityAppConfig.model_validate(city)
    missing = missing_sites([cfg.site for cfg in server_configs(city)])
    if missing:
        raise ValueError(
            f"no Ray node offers the resource of site(s) {', '.join(missing)}: "
            + site_resources_hint(missing)
        )
    targets = [
        RunTarget(target=build_model_server_app(cfg), name=cfg.app_name, route_prefix=None)
        for cfg in server_configs(city)
    ]
    targets.append(
        RunTarget(target=build_gateway_app(city.gateway), name=GATEWAY_APP, route_prefix="/")
    )
    return serve.run_many(targets)[-1]


gateway_app = build_gateway_app({})
"""The default (bristol) gateway as a bound application, for `serve build serving.app:gateway_app`
(which wants an application, not a builder)."""
