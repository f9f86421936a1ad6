"""The gateway's data plane: the placement and routing policy, the weighted site choice with
back-pressure, the emulated network, calls to the model servers with retries, and the
per-request telemetry. `serving.gateway.Gateway` puts the HTTP endpoints on top."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from edgeagents.core.scenario import load_scenario
from edgeagents.core.state import RoutingPolicy
from edgeagents.sim.network import Network
from serving.config import SERVER_DEPLOYMENT, GatewayConfig, server_app_name
from serving.protocol import OpenAIError, Outcome, RequestRecord

if TYPE_CHECKING:
    from collections.abc import Callable


class RequestRouter:
    """Sends requests to model servers by the current `RoutingPolicy`, counting what is in
    flight and recording each request; one per gateway replica."""

    def __init__(
        self,
        config: GatewayConfig | dict[str, Any] | None = None,
        *,
        handle_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.config = GatewayConfig.model_validate(config or {})
        self.scenario = load_scenario(self.config.scenario)
        self._kinds = {m.name: m.kind for m in self.scenario.models}
        placement = self.config.placement
        self.placement: dict[str, list[str]] = dict(
            placement if placement is not None else self.scenario.placement
        )
        self._check_placement(self.placement)
        self.policy = RoutingPolicy()
        self._network = Network(self.scenario)
        self._site_index = {s: i for i, s in enumerate(self.scenario.site_names)}
        self._cell_index = {c.name: i for i, c in enumerate(self.scenario.cells)}
        self._handle_factory = handle_factory or _serve_handle
        self._handles: dict[str, Any] = {}
        self._inflight: dict[tuple[str, str], int] = {}
        self._records: deque[RequestRecord] = deque(maxlen=20_000)
        self.errors_by_code: dict[str, int] = {}
        self._rng = random.Random(self.config.seed)

    # ---- control: policy, placement, telemetry -------------------------------------------

    def _check_placement(self, placement: dict[str, list[str]]) -> None:
        for site, models in placement.items():
            if site not in self.scenario.site_names:
                raise ValueError(f"placement: unknown site {site!r}")
            for m in models:
                if m not in self._kinds:
                    raise ValueError(f"placement.{site}: unknown model {m!r}")

    def set_policy(self, policy: RoutingPolicy | dict[str, Any]) -> dict[str, Any]:
        """Replace the routing policy (what the scheduler decided); returns it."""
        self.policy = RoutingPolicy.model_validate(policy)
        return self.policy.model_dump()

    def set_placement(self, placement: dict[str, list[str]]) -> dict[str, list[str]]:
        """Replace the placement (which server apps exist); the city calls this after a change."""
        self._check_placement(placement)
        self.placement = {s: list(ms) for s, ms in placement.items()}
        live = {server_app_name(m, s) for s, ms in self.placement.items() for m in ms}
        self._handles = {k: v for k, v in self._handles.items() if k in live}
        return self.placement

    def records(self, since_s: float = 0.0) -> list[dict[str, Any]]:
        """Per-request telemetry finished after `since_s` (epoch seconds)."""
        return [r.model_dump() for r in self._records if r.time_s > since_s]

    async def snapshot(self) -> dict[str, Any]:
        """Policy, placement, in-flight counts, and each model server's own figures."""
        pairs = [(m, site) for site, models in self.placement.items() for m in models]

        async def one(model: str, site: str) -> Any:
            call = self._handle(server_app_name(model, site)).stats.remote()
            return await asyncio.wait_for(_await(call), 10.0)

        results = await asyncio.gather(*(one(m, s) for m, s in pairs), return_exceptions=True)
        servers, unreachable = [], []
        for (m, site), res in zip(pairs, results, strict=True):
            if isinstance(res, BaseException):  # loading or dead: reported, not fatal
                unreachable.append({"model": m, "site": site, "error": type(res).__name__})
            else:
                servers.append(res)
        return {
            "time_s": time.time(),
            "policy": self.policy.model_dump(),
            "placement": self.placement,
            "inflight": {f"{m}@{s}": n for (m, s), n in self._inflight.items() if n},
            "servers": servers,
            "unreachable": unreachable,
            "errors_by_code": dict(self.errors_by_code),
        }

    def _handle(self, app_name: str) -> Any:
        if app_name not in self._handles:
            self._handles[app_name] = self._handle_factory(app_name)
        return self._handles[app_name]

    def candidates(self, model: str) -> list[str]:
        """Sites to try for `model`, best first: sampled by policy weight, corrected by the
        requests already in flight there; servers at the back-pressure bound are left out."""
        placed = [s for s, ms in self.placement.items() if model in ms]
        weights = {w.site: w.weight for w in self.policy.routes.get(model, []) if w.site in placed}
        if not any(weights.values()):
            weights = dict.fromkeys(placed, 1.0)
        cap = self.config.max_queue_per_server
        live = {
            s: w / (1 + self._inflight.get((model, s), 0))
            for s, w in weights.items()
            if w > 0 and self._inflight.get((model, s), 0) < cap
        }
        order = []
        while live:
            total = sum(live.values())
            x, acc = self._rng.random() * total, 0.0
            chosen = next(iter(live))
            for chosen, w in live.items():  # noqa: B007 (the loop variable is the choice)
                acc += w
                if x <= acc:
                    break
            order.append(chosen)
            del live[chosen]
        return order

    def _delay_s(self, cell: str | None, site: str, nbytes: float, up: bool) -> float:
        if cell is None or not self.config.emulate_network:
            return 0.0
        c, s = self._cell_index[cell], self._site_index[site]
        home = int(self._network.cell_site[c])
        radio = (self._network.uplink_s if up else self._network.downlink_s)(
            np.array([c]), np.array([nbytes])
        )[0]
        src, dst = (home, s) if up else (s, home)
        return float(radio + self._network.transfer_s(src, dst, nbytes))

    def _cell(self, request: Request) -> str | None:
        cell = request.headers.get("x-edgeagents-cell")
        if cell is not None and cell not in self._cell_index:
            raise OpenAIError(
                400,
                f"unknown cell {cell!r} in x-edgeagents-cell "
                f"(known: {', '.join(self._cell_index)})",
                code="unknown_cell",
            )
        return cell

    def check_model(self, model: str, kinds: tuple[str, ...], endpoint: str) -> str:
        """The kind of `model`: 404 if the catalogue has no such model, 400 if `endpoint`
        serves no model of its kind."""
        kind = self._kinds.get(model)
        if kind is None:
            raise OpenAIError(
                404,
                f"The model {model!r} does not exist (known: {', '.join(self._kinds)})",
                code="model_not_found",
                param="model",
            )
        if kind not in kinds:
            raise OpenAIError(
                400,
                f"model {model!r} is a {kind} model; {endpoint} serves {', '.join(kinds)} models",
                code="wrong_model_kind",
                param="model",
            )
        return kind

    def default_model(self, kind: str) -> str:
        """The first model of `kind` in the catalogue; 404 if there is none."""
        for name, k in self._kinds.items():
            if k == kind:
                return name
        raise OpenAIError(404, f"no {kind} model in the catalogue", code="model_not_found")

    async def _call(
        self, model: str, request: dict[str, Any], cell: str | None, bytes_in: float
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send one request to a server; (server reply, gateway facts). Raises OpenAIError."""
        sites = self.candidates(model)
        if not sites:
            placed = any(model in ms for ms in self.placement.values())
            if placed:
                raise OpenAIError(
                    429,
                    f"every server of {model!r} has {self.config.max_queue_per_server} requests "
                    "in flight; retry later",
                    code="queue_full",
                    type_="rate_limit_error",
                )
            raise OpenAIError(
                503,
                f"model {model!r} is not deployed on any site now",
                code="model_not_deployed",
                type_="server_error",
            )
        attempts = sites[: self.config.retries + 1]
        while len(attempts) < self.config.retries + 1:  # retry on the same site if only one
            attempts.append(sites[0])
        last: Exception | None = None
        for i, site in enumerate(attempts):
            key = (model, site)
            self._inflight[key] = self._inflight.get(key, 0) + 1
            try:
                up = self._delay_s(cell, site, bytes_in, up=True)
                if up:
                    await asyncio.sleep(up)
                resp = self._handle(server_app_name(model, site)).infer.remote(request)
                reply = await asyncio.wait_for(_await(resp), self.config.request_timeout_s)
                return reply, {"site": site, "network_s": up, "retries": i}
            except TimeoutError:
                raise OpenAIError(
                    504,
                    f"{model} on {site} did not answer in {self.config.request_timeout_s:g} s",
                    code="timeout",
                    type_="server_error",
                ) from None
            except Exception as e:  # a replica died or is gone: try once more, then fail
                last = e
            finally:
                self._inflight[key] -= 1
            if i + 1 < len(attempts) and attempts[i + 1] == site:
                # Give Serve time to see the dead replica before asking the same site again.
                await asyncio.sleep(self.config.retry_backoff_s)
        raise OpenAIError(
            503,
            f"the server of {model} failed ({type(last).__name__}) after "
            f"{len(attempts)} attempt(s)",
            code="replica_failed",
            type_="server_error",
        )

    async def dispatch(
        self,
        request: Request,
        model: str,
        payload: dict[str, Any],
        bytes_in: float,
        render: Callable[[dict[str, Any]], tuple[dict[str, Any] | str, float]],
    ) -> Response:
        """Call, render the body, add the result's way back, record telemetry either way; the
        answer carries the facts (site, backend, weights, timings) under `x_edgeagents`."""
        t0 = time.perf_counter()
        cell = self._cell(request)
        facts: dict[str, Any] = {}
        try:
            reply, facts = await self._call(model, payload, cell, bytes_in)
            if "error" in reply:
                raise OpenAIError(reply.get("status", 400), reply["error"], code="invalid_input")
            facts.update(
                {
                    k: reply[k]
                    for k in ("backend", "weights", "synthetic_weights", "replica", "batch")
                }
            )
            facts.update(queue_s=reply["queue_s"], infer_s=reply["infer_s"])
            body, bytes_out = render(reply["result"])
            down = self._delay_s(cell, facts["site"], bytes_out, up=False)
            if down:
                await asyncio.sleep(down)
            facts["network_s"] += down
            self._record(model, cell, t0, 200, "served", None, facts)
            if isinstance(body, str):
                return PlainTextResponse(body)
            return JSONResponse({**body, "x_edgeagents": {**facts, "model": model}})
        except OpenAIError as e:
            failed = e.code in ("replica_failed", "timeout")
            outcome: Outcome = "failed" if failed else "refused"
            self._record(model, cell, t0, e.status, outcome, e.code, facts)
            raise

    def _record(
        self,
        model: str,
        cell: str | None,
        t0: float,
        status: int,
        outcome: Outcome,
        reason: str | None,
        facts: dict[str, Any],
    ) -> None:
        self._records.append(
            RequestRecord(
                time_s=time.time(),
                model=model,
                site=facts.get("site"),
                cell=cell,
                status=status,
                outcome=outcome,
                reason=reason,
                latency_s=time.perf_counter() - t0,
                network_s=facts.get("network_s", 0.0),
                queue_s=facts.get("queue_s", 0.0),
                infer_s=facts.get("infer_s", 0.0),
                retries=facts.get("retries", 0),
            )
        )


async def _await(response: Any) -> Any:
    return await response


def _serve_handle(app_name: str) -> Any:
    from ray import serve

    return serve.get_deployment_handle(SERVER_DEPLOYMENT, app_name=app_name)
