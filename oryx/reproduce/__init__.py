"""`oryx reproduce`: presets (runs/reproduce/*.yaml), the stage ledger, and the run that trains,
evaluates and tabulates (see oryx/reproduce/runner.py)."""
