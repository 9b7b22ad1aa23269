"""``python3 -m inference_stub``: the image's ENTRYPOINT (and its healthcheck's)."""

import os
import sys

from .cli import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # nothing is left to clean up; interpreter teardown alone took ~60 ms
