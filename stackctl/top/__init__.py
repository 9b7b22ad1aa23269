"""`stackctl top`: a live picture of the stack in the terminal.

snapshot.py is the data (one `Snapshot` per refresh); metrics.py reads the gateway's
Prometheus text and turns two readings into rates and quantiles; collect.py gathers a
Snapshot through injected sources (tests feed fakes); live.py makes the real sources;
format.py turns values into short strings; app.py (Textual, imported only by the
interactive path) renders a Snapshot and runs the keys' actions (actions.py).
"""
