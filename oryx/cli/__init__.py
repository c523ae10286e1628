"""Command line: `oryx --help`."""
