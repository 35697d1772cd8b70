"""Incident-detection evaluation: seeded scenarios, side-by-side runs, metrics with confidence intervals, reports."""
