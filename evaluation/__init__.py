"""Evaluation: benchmarks of the API, the tiers and the detectors, above the runtime and never
imported by it (the replays, peers and scenarios are ``simulation/``, the same layer)."""
