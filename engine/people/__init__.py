"""People: names folded for search and matching."""
