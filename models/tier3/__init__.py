"""Tier 3: collaborative filtering of consumer experience and risk from streaming anomalies."""
