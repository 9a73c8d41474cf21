"""The package's version: read by the build (``pyproject.toml``) and sent to
the host as the worker version."""

__version__ = "0.1.0"
