"""The library: document store (SQLite), chunking, embeddings, FAISS vectors, retrieval."""
