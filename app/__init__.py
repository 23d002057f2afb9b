"""RapidQA desktop GUI (PySide6); talks to the engine only through core.api and core.events."""
