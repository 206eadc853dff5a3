"""dialforge: multi-turn, tool-use dialogue datasets for training LLM agents."""

__version__ = "0.1.0"
