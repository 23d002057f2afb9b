"""Decoding loops: autoregressive baseline and retrieval-augmented speculative decoding."""
