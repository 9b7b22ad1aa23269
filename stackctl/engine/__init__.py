"""Doing: the Docker adapter and the operations built on it (up, down, status, switch)."""
