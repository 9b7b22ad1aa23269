"""Check a gateway config folder with the real LiteLLM library, inside the gateway's image.

Run there as a script (`python3 - /check < this file`), so the host needs no litellm. It
prints one JSON document: {"ok": bool, "errors": [...], "models": [...]}. What it checks is
what the proxy would trip over at start-up, or silently ignore:
- the YAML parses and has a model_list;
- every router_settings key is an argument of litellm.Router (the proxy only warns);
- litellm.Router builds from the model list and router settings (it raises on invalid
  deployments, fallbacks and aliases);
- every custom callback (`module.instance`) imports from the config's own folder.
Environment references (`os.environ/NAME`) get a placeholder: values are not checked here.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys

import yaml  # litellm's own dependency: wherever litellm is, so is PyYAML


def check(folder: str) -> dict:
    errors: list[str] = []
    models: list[str] = []
    try:
        with open(os.path.join(folder, "config.yaml"), encoding="utf-8") as fh:
            config = yaml.safe_load(fh) or {}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "errors": [f"config.yaml does not load: {exc}"], "models": []}

    text = json.dumps(config)
    for name in {part.split('"')[0] for part in text.split("os.environ/")[1:]}:
        os.environ.setdefault(name, "placeholder-for-check")

    model_list = config.get("model_list") or []
    if not model_list:
        errors.append("model_list is empty: the gateway would serve nothing")
    models = sorted({m.get("model_name", "") for m in model_list if isinstance(m, dict)})

    # here, not at the top: importing litellm took 6.4 s (host venv, 2 cores), spent only once
    # config.yaml loads; and LITELLM_LOCAL_MODEL_COST_MAP (set below __main__) must come first
    import litellm

    router_settings = dict(config.get("router_settings") or {})
    accepted = set(inspect.signature(litellm.Router.__init__).parameters) - {"self"}
    for key in sorted(set(router_settings) - accepted):
        errors.append(f"router_settings.{key} is not a setting of litellm.Router "
                      "(the proxy would ignore it)")
        router_settings.pop(key)
    try:
        litellm.Router(model_list=model_list, **router_settings)
    except Exception as exc:  # noqa: BLE001
        errors.append(f"litellm.Router refuses the config: {type(exc).__name__}: {exc}")

    sys.path.insert(0, folder)
    for callback in (config.get("litellm_settings") or {}).get("callbacks") or []:
        if isinstance(callback, str) and "." in callback:
            module, _, attr = callback.rpartition(".")
            try:
                getattr(importlib.import_module(module), attr)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"callback {callback!r} does not load: {type(exc).__name__}: {exc}")
    return {"ok": not errors, "errors": errors, "models": models}


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")
    print(json.dumps(check(sys.argv[1])))
