"""Pricing: tariffs, distances and quotes."""
