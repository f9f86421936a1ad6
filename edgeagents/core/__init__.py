"""The core: the typed state, scenarios, GPU profiles, operator notices' types and strict form,
the environment protocol and the data plane's interface (what a router sees of a city).

Everything above builds on these. The core imports nothing else of the project, and no Ray,
Chroma or LLM client.
"""
