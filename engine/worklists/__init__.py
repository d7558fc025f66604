"""Worklists: a department's inbox (受信箱) and the FM dashboard."""
