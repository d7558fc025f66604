"""The events of the case machine, one module per stage, and the one way they fire (firing.py)."""
