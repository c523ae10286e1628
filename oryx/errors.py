"""User-facing errors. The command line prints these as one line and exits with status 2."""


class OryxError(ValueError):
    """A mistake in what the user asked for (bad input, config, checkpoint, schedule)."""


class CheckpointError(OryxError):
    """A checkpoint directory that is missing, incomplete or corrupt."""
