"""The model-facing actors: generators, user simulator, agent, judge (prompts live in dialforge/prompts)."""
