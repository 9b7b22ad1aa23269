"""Installed in the gateway image (a .pth file imports it at start): a worker that shuts down
answers the requests already on their way to it.

uvicorn's graceful shutdown (0.55) closes at once every connection with no request under
way, and that includes one it accepted a moment ago whose request bytes have not been read
yet: the client sees the connection closed without a response (RemoteDisconnected). Under
`stackctl reload` the old workers shut down while traffic flows, and a request now and then
met exactly that. Here such a connection gets GRACE seconds to bring its request, which is
then answered (and the connection closed after it, as uvicorn does for one in progress).

Only a hook is installed at start: uvicorn is patched when the gateway imports it, so other
Python processes in the image (health probes) pay nothing. Standard library only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

GRACE = 1.0  # seconds; a request arrives within milliseconds of its connection
PROTOCOLS = {"uvicorn.protocols.http.httptools_impl": "HttpToolsProtocol",
             "uvicorn.protocols.http.h11_impl": "H11Protocol"}


def patch(protocol: Any) -> None:
    close_now = protocol.shutdown

    def shutdown(self: Any) -> None:
        if self.cycle is None and not getattr(self, "_stackctl_grace", False):
            self._stackctl_grace = True  # the second call decides as uvicorn does
            self.loop.call_later(GRACE, self.shutdown)
            return
        close_now(self)

    shutdown.stackctl_grace = GRACE  # type: ignore[attr-defined]  # verify_image checks it
    protocol.shutdown = shutdown


class PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in PROTOCOLS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            patch(getattr(module, PROTOCOLS[name]))

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if not any(isinstance(f, PatchOnImport) for f in sys.meta_path):
    sys.meta_path.insert(0, PatchOnImport())
