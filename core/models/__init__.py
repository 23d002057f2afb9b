"""Model runtime: loading, GGUF conversion cache, precision, prompts, the KV store."""
