"""Docker clients (python-on-whales): the one adapter of the local engine (adapter.py:
Compose, containers, images) and a Swarm manager's API (swarm.py)."""
