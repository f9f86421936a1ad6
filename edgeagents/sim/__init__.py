"""The simulated city: the discrete-event engine, the backhaul network, workloads and traces,
the city testbed itself (replicas, batching, dispatch), latency bounds and episode metrics.

Imports only `edgeagents.core`.
"""
