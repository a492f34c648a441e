"""acdkit: forensic-readiness toolkit for Active Cyber Defense reporting."""

# the single source of the version (pyproject.toml reads it from here): a literal, because
# importlib.metadata costs ~60 ms at every start of the command line
__version__ = "0.1.0"

__all__ = ["__version__"]
