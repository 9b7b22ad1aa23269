"""Code that runs inside containers, not in stackctl's own process; the wheel ships it.

- routing_callback.py, trace_callback.py: copied byte for byte beside the gateway's config
  (stackctl.render.files), imported there by LiteLLM;
- webhook_relay.py: copied beside Alertmanager 0.25's config (stackctl.render.alertmanager),
  run there first by its start script (standard library only);
- gateway_check.py: run in the gateway's image by `stackctl reload` (stackctl.gateway.reload);
- verify_image.py: run by the LiteLLM image's build (copied into its context);
- graceful_shutdown.py: installed in the LiteLLM image, imported at start by a .pth file;
- inference_stub/: the stdlib-only stand-in for vLLM and Ollama (copied into the
  inference-stub image's context, run there as ``python3 -m inference_stub``).

The paths below are where the images' build and `reload` find them, in a checkout as in an
installed (non-editable) copy.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
INFERENCE_STUB = HERE / "inference_stub"
VERIFY_IMAGE = HERE / "verify_image.py"
GRACEFUL_SHUTDOWN = HERE / "graceful_shutdown.py"
GATEWAY_CHECK = HERE / "gateway_check.py"
