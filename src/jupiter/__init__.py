"""Jupiter: a security-operations dashboard built on a first-class resilience toolkit."""

__version__ = "0.1.0"
