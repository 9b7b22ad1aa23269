"""The provider registry: YAML files → typed, cross-checked models."""
