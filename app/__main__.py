"""`python -m app`: the same as the `rapidqa` command."""

from app.cli import main

raise SystemExit(main())
