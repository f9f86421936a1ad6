"""Ray Serve: per-site model servers, the OpenAI-compatible gateway, and the real city that
implements `edgeagents.env.Environment`. Depends on `edgeagents`."""
