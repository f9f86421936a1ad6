"""A local Ray cluster with one node per edge site (`ray.cluster_utils.Cluster`): the head is
the first site (and carries the gateway, Serve's controller and HTTP proxy); each other site is
a worker node offering only its `site-<name>` resource, removed and added back by name."""

from __future__ import annotations

from typing import Any

from serving.config import site_resource

NODE_CPUS = 2
"""Ray CPUs each node offers (a server takes 0.1): the cores are the host's, shared."""


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
        return self.nodes[site].node_id

    def add(self, site: str) -> None:
        """A fresh worker node for `site` (its old node, if any, stays gone)."""
        if site in self.nodes:
            raise ValueError(f"site {site} already has a node")
        self.nodes[site] = self.cluster.add_node(
            num_cpus=NODE_CPUS, resources={site_resource(site): 1}
        )

    def remove(self, site: str) -> None:
        """Kill the node of `site` (every process on it); the head's site cannot go."""
        if site == self.head_site:
            raise ValueError(f"site {site} is the head node's: removing it ends the cluster")
        self.cluster.remove_node(self.nodes.pop(site))

    def shutdown(self) -> None:
        if self.owned:
            self.cluster.shutdown()
