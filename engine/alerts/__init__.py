"""Alerts (アラート): raised, acknowledged and resolved; the stall scan that raises them; notices to departments."""
