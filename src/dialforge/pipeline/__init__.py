"""The stages of a run (tools -> tasks -> dialogues -> judge); each reads and writes artifacts."""
