"""Which models are resident on the GPUs, as a user drives them: what `stackctl ps` shows,
what `load`/`unload` change and which members `pin` keeps. See design.md beside this file."""
