"""Model files: pulled into Ollama through its API, GGUF files copied where llama.cpp
loads them."""
