"""Compare two baselines on the default city from Python, and look at one prompt's path.

Run: .venv/bin/python examples/compare_baselines.py
"""

from edgeagents import compare, load_scenario

scenario = load_scenario("bristol")
report, runs = compare(scenario, ["round-robin", "greedy-autoscale"], duration_s=300, seed=1)
for r in report.results:
    print(f"{r.policy:>17}: mean {r.mean_latency_s:6.2f} s, Jain {r.jain:.3f}, "
          f"{r.lower_bound_ratio:.2f}x the zero-queue bound")  # fmt: skip

out = runs["greedy-autoscale"].outcomes
print("prompt 0: latency", round(float(out.latency_s[0]), 3), "s, served at site",
      scenario.sites[int(out.site[0])].name)  # fmt: skip
