"""Build-time check of the LiteLLM image: the right version and the packages the proxy
needs at start-up import with the image's own interpreter."""

import importlib
import importlib.metadata
import sys

want = sys.argv[1]
have = importlib.metadata.version("litellm")
if have != want:
    sys.exit(f"litellm {have} installed, {want} expected")
for module in (
    "litellm",
    "litellm.proxy.proxy_server",
    "prometheus_client",
    "redis",
    "redis.asyncio",
    "uvicorn",
    "fastapi",
    "backoff",
    "orjson",
    "prisma.errors",
):
    importlib.import_module(module)
print(f"litellm {have} OK on Python {sys.version.split()[0]}")
