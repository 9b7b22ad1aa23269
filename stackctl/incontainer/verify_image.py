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
# graceful_shutdown.py's hook patches uvicorn's protocol as it is imported (h11: the image
# has no httptools)
from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402

if not hasattr(H11Protocol.shutdown, "stackctl_grace"):
    sys.exit("uvicorn's H11Protocol.shutdown is its own: graceful_shutdown.py was not loaded")
print(f"litellm {have} OK on Python {sys.version.split()[0]}")
