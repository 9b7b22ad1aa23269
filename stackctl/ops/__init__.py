"""The operations: up, down, status and switch, built on the Docker adapter."""
