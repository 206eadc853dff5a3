"""Checks every generation stage applies to what a model writes, below the actors so any layer can use them.

Meta words and the domain's own vocabulary, which tools change data and how prompts list tools, text copied
from the prompts' examples and placeholders, and near-duplicate texts: one home each, for the generators, the
user simulator, the agent, the judge and the report.
"""
