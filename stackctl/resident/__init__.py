"""The resident scheduler: one process per stack that loads GPU-group members on demand
(design.md)."""
