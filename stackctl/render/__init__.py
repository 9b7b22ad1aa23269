"""Pure renderers: registry → generated documents (as data, then as text)."""
