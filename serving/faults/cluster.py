"""A local Ray cluster with one node per edge site (`ray.cluster_utils.Cluster`): the head is
the first site (and carries the gateway, Serve's controller and HTTP proxy); each other site is
a worker node offering only its `site-<name>` resource, removed and added back by name.

A node added while the driver is busy (load threads, Ray's own gRPC threads: mid-row) is its
own `ray start --block` process in a new session, not a `Cluster.add_node`: that forks the
driver and runs Python in the child (Ray's `preexec_fn`), which hung here once in a
multi-threaded driver. Removing it ends that process group (SIGTERM: Ray stops the node)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from serving.config import site_resource

NODE_CPUS = 2
"""Ray CPUs each node offers (a server takes 0.1): the cores are the host's, shared."""
NODE_START_TIMEOUT_S = 120.0
"""How long a spawned node may take to offer its site (16 s measured on a busy host)."""


class SiteCluster:
    """Site name -> its Ray node, on a `ray.cluster_utils.Cluster`.

    Args:
        cluster: The cluster (its head node offers the first site's resource).
        nodes: Site -> its node (the head's site included).
        owned: Shut the cluster down in `shutdown()` (False: the caller owns it).
    """

    def __init__(self, cluster: Any, nodes: dict[str, Any], *, owned: bool = False) -> None:
        self.cluster = cluster
        self.nodes = dict(nodes)
        self.owned = owned
        self.head_site = next(s for s, n in nodes.items() if n is cluster.head_node)

    @classmethod
    def start(cls, sites: list[str]) -> SiteCluster:
        """A new cluster: the head is `sites[0]`, a worker node per other site."""
        from ray.cluster_utils import Cluster

        head = {"num_cpus": NODE_CPUS, "resources": {site_resource(sites[0]): 1},
                "include_dashboard": False}  # fmt: skip
        cluster = Cluster(initialize_head=True, head_node_args=head)
        out = cls(cluster, {sites[0]: cluster.head_node}, owned=True)
        try:
            for site in sites[1:]:
                out.add(site)
        except Exception:
            out.shutdown()
            raise
        return out

    @property
    def address(self) -> str:
        return self.cluster.address

    def node_id(self, site: str) -> str:
        node = self.nodes[site]
        if isinstance(node, subprocess.Popen):
            return _live_node_of(site)
        return node.node_id

    def add(self, site: str, *, spawn: bool = False, wait: bool = True) -> None:
        """A fresh worker node for `site` (its old node, if any, stays gone); `spawn`: as its
        own `ray start --block` process (safe while the driver is busy), which `wait`s until
        Ray sees its resource (else it comes up by itself, some seconds later)."""
        if site in self.nodes:
            raise ValueError(f"site {site} already has a node")
        resources = {site_resource(site): 1}
        if not spawn:
            self.nodes[site] = self.cluster.add_node(num_cpus=NODE_CPUS, resources=resources)
            return
        import json

        ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
        command = [ray_cli, "start", "--address", self.address, "--num-cpus", str(NODE_CPUS),
                   "--resources", json.dumps(resources), "--block"]  # fmt: skip
        self.nodes[site] = subprocess.Popen(
            command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while wait and not _live_node_of(site):
            if time.monotonic() > deadline or self.nodes[site].poll() is not None:
                self.remove(site)
                raise RuntimeError(f"the node of site {site} did not start ({' '.join(command)})")
            time.sleep(0.2)

    def remove(self, site: str) -> None:
        """Kill the node of `site` (every process on it); the head's site cannot go."""
        if site == self.head_site:
            raise ValueError(f"site {site} is the head node's: removing it ends the cluster")
        node = self.nodes.pop(site)
        if isinstance(node, subprocess.Popen):
            _end_session(node)
        else:
            self.cluster.remove_node(node)

    def shutdown(self) -> None:
        """Spawned nodes always end; the cluster too if this object started it."""
        for site, node in list(self.nodes.items()):
            if isinstance(node, subprocess.Popen):
                self.nodes.pop(site)
                _end_session(node)
        if self.owned:
            self.cluster.shutdown()


def _live_node_of(site: str) -> str:
    """The id of a live node that offers `site` ('' if none)."""
    from serving.app import site_nodes

    return next(iter(site_nodes().get(site, [])), "")


def _end_session(process: subprocess.Popen) -> None:
    """SIGTERM to the process group of a spawned node (Ray stops it), SIGKILL past 30 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
