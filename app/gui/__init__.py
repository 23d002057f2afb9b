"""The window (PySide6): the main window, its jobs on the engine worker, settings,
history and theme; `answers/`, `library/` and `pdf/` hold the three sides of it."""
