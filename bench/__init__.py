"""Benchmarks above the engine: speed, context sweep, quality, scoring; and their scripts."""
