"""Benchmarks behind `oryx bench ...`: each prints a table and writes JSON under benchmarks/results/."""
