"""Generation stages before any dialogue: questions, tools, return schemas, policies, tasks."""
