"""JSON-Schema utilities shared by the model clients, the environments and the offline models.

``checks`` says why a value does not satisfy a schema; ``sampler`` builds values that do. Below
``llm`` in the layer order: nothing here knows about models, environments or actors.
"""
