"""The `loanstack` command line (entry point `loanstack.cli:main`)."""

from loanstack.cli.main import main

__all__ = ["main"]
