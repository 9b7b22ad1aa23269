"""Errors the engine raises for the user (no traceback: the message says what to do)."""


class PlanError(Exception):
    """The request cannot be carried out as asked; the message says what to do instead."""
