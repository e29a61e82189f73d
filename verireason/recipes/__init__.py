"""Recipes: one module per command, wiring library pieces; each exposes ``run(cfg, ...)``."""
