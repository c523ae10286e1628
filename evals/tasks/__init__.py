"""lm-eval task YAMLs (see oryx_offline.yaml) and their hooks (utils.py)."""
