"""`python -m verireason` → the Typer app (the guard keeps spawned worker processes from re-running the CLI)."""

from verireason.cli import main

if __name__ == "__main__":
    main()
