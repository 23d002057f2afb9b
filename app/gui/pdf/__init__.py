"""The PDF viewer: pages rendered on a thread, the canvas with highlighted passages, the toolbar."""
