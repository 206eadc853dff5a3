"""dialforge: multi-turn, tool-use dialogue datasets for training LLM agents."""

__version__ = "0.1.0"
"""The one place the version is written: the package build (``pyproject.toml``) reads it from here."""
