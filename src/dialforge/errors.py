"""Errors shared by every layer."""


class ConfigError(Exception):
    """A configuration problem, phrased for the person who wrote the file: where, what, and the fix."""


HF_HINT = "pip install 'dialforge[hf]'"
"""How to install the Hugging Face ``datasets`` library, for the errors of every layer that needs it."""
