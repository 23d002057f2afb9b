"""The `rapidqa` command: `main` (entry point `app.cli.main:main`), the parser, the
console renderer, and one module per command."""
