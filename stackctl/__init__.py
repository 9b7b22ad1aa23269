"""stackctl: one provider registry becomes a validated, health-gated local LLM stack."""

__version__ = "0.1.0"
