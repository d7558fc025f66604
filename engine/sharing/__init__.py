"""Sharing a person's data with bodies outside the city: the bases the law gives (bases.py), and the record of
each provision (提供記録, provisions.py)."""
