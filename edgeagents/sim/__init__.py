"""The simulated city: the discrete-event engine, the backhaul network, workloads and traces,
the city testbed itself (replicas, batching, dispatch), latency bounds and episode metrics.

Modules, lowest first: `engine`, `network`, `trace`, `cells`, `workload`, `outcomes`,
`replica` (replicas, GPUs and the batcher), `candidates` (the replicas a router is shown),
`costs` (what a prompt costs where), `dispatch` (the prompts' way through the city),
`telemetry` (what a tick shows), `city` (`SimulatedCity`: observe, apply, advance), `bounds`,
`metrics`.

Imports only `edgeagents.core`.
"""
