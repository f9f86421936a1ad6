"""How HTTP reaches the gateway: through Serve's proxy actor (the default), or straight into the
gateway replica's own HTTP server (Ray 2.60's direct ingress, an experimental Serve feature).

Direct ingress saves the proxy-to-replica actor hop, 10 to 15 ms a request on this 2-core VM,
and keeps the replica bound to Serve's HTTP host (127.0.0.1 here), unlike the HAProxy ingress,
which binds all interfaces. The proxy on the head node still serves the usual port; the
gateway replica listens on a port Serve allocates from `RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT`
(30000) up, which `direct_ingress_url` (or `python -m serving.ingress`) looks up.

    RAY_SERVE_ENABLE_DIRECT_INGRESS=1 RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=0 \\
        ray start --head ...
    python -m serving.ingress          # prints http://127.0.0.1:30000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from serving.config import GATEWAY_APP

DIRECT_INGRESS_ENV: dict[str, str] = {
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
}
"""Serve reads these when its controller and replicas start. The draining period (30 s by
default, so that a cloud load balancer can deregister a replica) would hold every unloaded model
server for 30 s; nothing stands in front of the replicas here."""


class IngressError(RuntimeError):
    """Direct ingress cannot be set up or found; the message is one line for the user."""


def direct_ingress_enabled() -> bool:
    return os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") == "1"


def enable_direct_ingress() -> None:
    """Put `DIRECT_INGRESS_ENV` in this process's environment, which a local Ray started
    afterwards passes to Serve's controller and replicas."""
    import ray

    if ray.is_initialized() and not direct_ingress_enabled():
        raise IngressError(
            "direct ingress must be set before Ray starts: set RAY_SERVE_ENABLE_DIRECT_INGRESS=1 "
            "in the environment of `ray start` (or of the process that calls ray.init)"
        )
    os.environ.update(DIRECT_INGRESS_ENV)


def direct_ingress_url(
    app_name: str = GATEWAY_APP, *, host: str | None = "127.0.0.1", timeout_s: float = 60.0
) -> str:
    """The URL of `app_name`'s replica's own HTTP server, from the Serve controller's target
    groups (Ray's alpha `TargetGroup` API). `host` None: the replica's node IP (a cluster whose
    Serve HTTP host is 0.0.0.0); by default the loopback address Serve was started on.

    Raises:
        IngressError: direct ingress is off in the cluster, or no replica of the app is
            serving HTTP within `timeout_s`.
    """
    import ray
    from ray.serve.context import _get_global_client
    from ray.serve.exceptions import RayServeException

    try:
        controller = _get_global_client()._controller
    except RayServeException as e:
        raise IngressError("Ray Serve is not running in this cluster") from e
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            groups = ray.get(controller.get_target_groups.remote(app_name), timeout=30)
        except KeyError:
            groups = []
        except ray.exceptions.RayTaskError as e:
            if not isinstance(e.cause, KeyError):
                raise
            groups = []
        targets = [
            t
            for g in groups
            if g.app_name == app_name and g.protocol == "HTTP"
            for t in g.targets
            if t.name.startswith("SERVE_REPLICA::")
        ]
        if targets:
            t = min(targets, key=lambda t: t.name)
            return f"http://{host or t.ip}:{t.port}"
        if time.monotonic() > deadline:
            raise IngressError(
                f"no replica of {app_name!r} serves HTTP directly after {timeout_s:.0f} s: is "
                "RAY_SERVE_ENABLE_DIRECT_INGRESS=1 set where Ray was started?"
            )
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    """Print the gateway's direct-ingress URL in a running cluster."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--address", default="auto", help="Ray address of the running cluster.")
    p.add_argument("--app", default=GATEWAY_APP, help="Serve application name.")
    p.add_argument(
        "--node-ip", action="store_true", help="Use the replica's node IP, not 127.0.0.1."
    )
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    try:
        ray.init(address=args.address, log_to_driver=False)
    except ConnectionError:
        _fail(f"no Ray cluster at {args.address!r}: start one with `ray start --head`")
    try:
        print(
            direct_ingress_url(args.app, host=None if args.node_ip else "127.0.0.1", timeout_s=10)
        )
    except IngressError as e:
        _fail(str(e))
    finally:
        ray.shutdown()


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
