"""The one Docker adapter (python-on-whales): Compose, containers and images."""
