"""JSON-Schema utilities shared by the data model, the model clients, the environments and the offline models.

``checks`` says why a schema is not valid and why a value does not satisfy one; ``sampler`` builds values
that do. The lowest layer: it imports nothing else of dialforge.
"""
