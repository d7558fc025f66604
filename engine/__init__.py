"""Tsunagu's domain core: models, state machines, routing, use cases. Imports no web framework."""
