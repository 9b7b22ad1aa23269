"""`doctor`: can this machine run the stack, and what to do where it cannot.

Each check is a small function returning one `Check` (ok, warn or fail, what was found, the
fix). Gathering facts (effects: the Docker adapter, the filesystem, the port checker, all
injected through `Machine`) is separate from judging them (the pure `judge_*` functions,
tested as data). Checks run side by side and independently: one that fails or raises does
not stop the others; an exception becomes a fail line naming the check, never a traceback.

Thresholds for the free space where Docker keeps images and named volumes (the model caches
live in named volumes, so under DockerRootDir): fail under `DISK_FAIL` (2 GiB: the local
image set alone takes ~1.5 GiB, and a pull or a model download would stop half-way), warn
under `DISK_WARN` (20 GiB: one vLLM image (~10 GiB) plus a 7B AWQ model (~4–5 GiB) with room
to spare).

Modules: `judge` (facts → Check, pure, and the report), `facts` (gathering them: the
injected `Machine`), `checks` (one function per check, and `diagnose` running them all).
"""
