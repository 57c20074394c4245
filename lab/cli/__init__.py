"""The `anylab` command line: the only package that prints or chooses exit codes."""

from lab.cli.main import main

__all__ = ["main"]
