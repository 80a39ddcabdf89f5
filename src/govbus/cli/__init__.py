"""The command line: argument parsing and rendering only; the work happens in the layers."""

from govbus.cli.main import main

__all__ = ["main"]
