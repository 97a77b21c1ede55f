"""What every command shares: one clear error line and exit code 2 for an expected refusal."""

from __future__ import annotations

import typer


def fail(message: str) -> None:
    """Print a clear error and exit with status 2 (no traceback for bad input)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)
