"""Typed errors. Everything unlearnkit raises on bad input derives from UnlearnKitError."""
from __future__ import annotations


class UnlearnKitError(Exception):
    """Base class of every error unlearnkit raises on purpose."""


class ConfigError(UnlearnKitError, ValueError):
    """A configuration value or key is invalid (unknown key, bad type, out of range)."""


class RegistryError(UnlearnKitError, KeyError):
    """Unknown or duplicate name in a registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DataError(UnlearnKitError):
    """Dataset files are missing or malformed."""


class ForgetRequestError(UnlearnKitError, ValueError):
    """A forget (deletion) request is invalid; it is refused before any model is touched."""


class CheckpointError(UnlearnKitError):
    """A checkpoint file is unreadable, corrupted or does not match what was asked for."""


class TrainingError(UnlearnKitError):
    """Training or unlearning diverged (non-finite loss) or could not run."""


class BackendError(UnlearnKitError):
    """A job could not be run by its backend (e.g. a Ray worker kept dying past its retries)."""
