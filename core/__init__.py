"""RapidQA engine: PDF ingestion, retrieval and retrieval-augmented speculative decoding (no Qt)."""
