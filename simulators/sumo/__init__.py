"""SUMO mode: freeway scenarios generated for SUMO and stepped through libsumo."""
