"""The gateway's data plane: the placement and routing policy, the weighted site choice with
back-pressure, the emulated network, calls to the model servers with retries, and the
per-request telemetry. `serving.gateway.Gateway` puts the HTTP endpoints on top."""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

logger = logging.getLogger(__name__)

FAILED_CODES = ("replica_failed", "timeout", "site_down")
"""Error codes of a request the city failed to serve (recorded as `failed`, not `refused`)."""


STATS_TIMEOUT_S = 10.0
"""How long a snapshot waits for one server's figures (a loading or dead one is reported
unreachable)."""


class SiteDown(Exception):
    """The site of an in-flight call lost its Ray node."""


class RequestRouter:
    """Sends requests to model servers by the current `RoutingPolicy`, counting what is in
    flight and recording each request; one per gateway replica.

    With `live_sites` (the sites some live Ray node offers, `serving.app.live_sites` in Serve),
    a background task polls it every `liveness_poll_s`: a site whose node is gone is down, no
    request goes there, and the calls in flight to it are retried elsewhere or refused.
    """

    def __init__(
        self,
        config: GatewayConfig | dict[str, Any] | None = None,
        *,
        handle_factory: Callable[[str], Any] | None = None,
        live_sites: Callable[[], set[str]] | None = None,
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
        self._live_sites = live_sites
        self._down: set[str] = set()
        self._down_events: dict[str, asyncio.Event] = {}
        self._watch: asyncio.Task | None = None
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

    def down_sites(self) -> list[str]:
        """Sites no live Ray node offers now (starts the liveness watch if it is not running)."""
        self._ensure_watch()
        return sorted(self._down)

    def mark_down(self, down: set[str]) -> None:
        """Set the sites that are down: calls in flight to a newly down site stop waiting."""
        for site in down - self._down:
            self._down_event(site).set()
        for site in self._down - down:
            self._down_events.pop(site, None)
        if down != self._down:
            logger.warning("sites down: %s", ", ".join(sorted(down)) or "none")
        self._down = set(down)

    def _down_event(self, site: str) -> asyncio.Event:
        if site not in self._down_events:
            self._down_events[site] = asyncio.Event()
        return self._down_events[site]

    def _ensure_watch(self) -> None:
        poll = self._live_sites
        if poll is None or (self._watch is not None and not self._watch.done()):
            return
        try:
            self._watch = asyncio.get_running_loop().create_task(self._watch_sites(poll))
        except RuntimeError:  # no event loop (a synchronous caller): poll once
            self.mark_down(set(self.scenario.site_names) - poll())

    async def _watch_sites(self, poll: Callable[[], set[str]]) -> None:
        """Poll node liveness for ever; an error in one poll is logged, never fatal."""
        while True:
            try:
                live = await asyncio.to_thread(poll)
                self.mark_down(set(self.scenario.site_names) - live)
            except Exception:
                logger.exception("site liveness poll failed")
            await asyncio.sleep(self.config.liveness_poll_s)

    def records(self, since_s: float = 0.0) -> list[dict[str, Any]]:
        """Per-request telemetry finished after `since_s` (epoch seconds)."""
        return [r.model_dump() for r in self._records if r.time_s > since_s]

    async def snapshot(self) -> dict[str, Any]:
        """Policy, placement, in-flight counts, and each model server's own figures."""
        self._ensure_watch()
        pairs = [
            (m, site)
            for site, models in self.placement.items()
            for m in models
            if site not in self._down
        ]

        async def one(model: str, site: str) -> Any:
            call = self._handle(server_app_name(model, site)).stats.remote()
            return await self._reply(call, site, timeout_s=STATS_TIMEOUT_S)

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
            "down_sites": sorted(self._down),
        }

    def _handle(self, app_name: str) -> Any:
        if app_name not in self._handles:
            self._handles[app_name] = self._handle_factory(app_name)
        return self._handles[app_name]

    def candidates(self, model: str) -> list[str]:
        """Sites to try for `model`, best first: sampled by policy weight, corrected by the
        requests already in flight there; servers at the back-pressure bound are left out."""
        placed = self._placed_up(model)
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

    def _placed_up(self, model: str) -> list[str]:
        """Sites that hold `model` and are not down."""
        return [s for s, ms in self.placement.items() if model in ms and s not in self._down]

    def _retry_site(self, model: str, tried: list[str]) -> str | None:
        """Where a failed call goes next: a site not tried yet (by policy first, then any
        other that holds the model, below the back-pressure bound), else the same site again
        if it is still up and holds the model (Serve restarts a dead replica), else None."""
        cap = self.config.max_queue_per_server
        fresh = [s for s in self.candidates(model) if s not in tried]
        fresh += [
            s
            for s in self._placed_up(model)
            if s not in tried and s not in fresh and self._inflight.get((model, s), 0) < cap
        ]
        if fresh:
            return fresh[0]
        last = tried[-1]
        return last if last in self._placed_up(model) else None

    async def _reply(self, response: Any, site: str, *, timeout_s: float) -> Any:
        """The server's reply; SiteDown if the site's node goes first (a call to a dead node's
        replica would wait for ever), TimeoutError past `timeout_s`."""
        call = asyncio.ensure_future(_await(response))
        down = asyncio.ensure_future(self._down_event(site).wait())
        done, _ = await asyncio.wait({call, down}, timeout=timeout_s, return_when="FIRST_COMPLETED")
        down.cancel()
        if call in done:
            return call.result()
        call.cancel()
        with contextlib.suppress(Exception):
            response.cancel()
        if down in done:
            raise SiteDown(site)
        raise TimeoutError

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
        """Send one request to a server; (server reply, gateway facts). A call whose replica
        dies or whose site goes down is retried (`retries` times) elsewhere, or on the same
        site if it is the only one and still up. Raises OpenAIError."""
        self._ensure_watch()
        sites = self.candidates(model)
        if not sites:
            raise self._no_site(model)
        tried: list[str] = []
        last: Exception | None = None
        site = sites[0]
        for i in range(self.config.retries + 1):
            if i:
                retry = self._retry_site(model, tried)
                if retry is None:
                    break
                if retry == site:  # give Serve time to see the dead replica
                    await asyncio.sleep(self.config.retry_backoff_s)
                site = retry
            tried.append(site)
            key = (model, site)
            self._inflight[key] = self._inflight.get(key, 0) + 1
            try:
                up = self._delay_s(cell, site, bytes_in, up=True)
                if up:
                    await asyncio.sleep(up)
                resp = self._handle(server_app_name(model, site)).infer.remote(request)
                reply = await self._reply(resp, site, timeout_s=self.config.request_timeout_s)
                return reply, {"site": site, "network_s": up, "retries": i}
            except TimeoutError:
                raise OpenAIError(
                    504,
                    f"{model} on {site} did not answer in {self.config.request_timeout_s:g} s",
                    code="timeout",
                    type_="server_error",
                ) from None
            except Exception as e:  # a replica died, is gone, or its site went down
                last = e
            finally:
                self._inflight[key] -= 1
        where = ", ".join(tried)
        if tried and tried[-1] in self._down:
            raise OpenAIError(
                503,
                f"site {tried[-1]} went down while serving {model} and no other site could "
                f"take the request (tried {where})",
                code="site_down",
                type_="server_error",
            )
        raise OpenAIError(
            503,
            f"the server of {model} failed ({type(last).__name__}) after "
            f"{len(tried)} attempt(s) ({where})",
            code="replica_failed",
            type_="server_error",
        )

    def _no_site(self, model: str) -> OpenAIError:
        """Why no site can take a request for `model` now: all full (429), all down, or none
        placed (503)."""
        if self._placed_up(model):
            return OpenAIError(
                429,
                f"every server of {model!r} has {self.config.max_queue_per_server} requests "
                "in flight; retry later",
                code="queue_full",
                type_="rate_limit_error",
            )
        down = sorted(s for s, ms in self.placement.items() if model in ms)
        if down:
            return OpenAIError(
                503,
                f"every site serving {model!r} is down ({', '.join(down)})",
                code="site_down",
                type_="server_error",
            )
        return OpenAIError(
            503,
            f"model {model!r} is not deployed on any site now",
            code="model_not_deployed",
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
            failed = e.code in FAILED_CODES
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
