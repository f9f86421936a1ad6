"""Experiments on the city: the episode driver, baseline comparisons (`bench`), the agents'
main run (`run`), the adaptation and LM benchmarks, and plots.

The top of the library: may import every layer below it, `graphs` and `memory` too; nothing
in the library imports it (only the CLI and users' scripts).
"""
