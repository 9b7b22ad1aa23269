"""From a machine or an old registry to a registry stackctl runs (`stackctl init`).

detect.py reads the machine (GPUs, a running Ollama, GGUF files, the Hugging Face cache);
fresh.py turns what it found into a new registry, offline.py supplies the offline example;
legacy.py and references.py migrate the old format (`init --from`), migrate.py ties them
together. Everything that decides is pure (data in, YAML trees and a report out); only the
probes in detect.py and files.py touch the machine.
"""
