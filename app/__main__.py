"""`python -m app`: the same as the `rapidqa` command."""

import multiprocessing

if __name__ == "__main__":  # not when a child process (the PDF reader) imports it
    multiprocessing.freeze_support()
    from app.cli.main import main

    raise SystemExit(main())
