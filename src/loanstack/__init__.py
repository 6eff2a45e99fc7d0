"""Check, deploy, try and tear down the loan processing migration stack (lib/TapStack.json)."""

__version__ = "0.1.0"
