"""PDF handling: text and layout extraction (in a child process), page rendering."""
