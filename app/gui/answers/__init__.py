"""The answer side of the window: the question box, the live answer, its statistics,
the history list, and the controller that runs questions."""
