"""Errors that reach the user: each says what failed, where, and what to do."""

from __future__ import annotations


class ThetaError(Exception):
    """An error with a message fit for the user; never a traceback."""


class FormatError(ThetaError):
    """A file is not a valid checkpoint of the format that claims it."""


class ObjectMissing(ThetaError):
    def __init__(self, oid: str, message: str) -> None:
        super().__init__(message)
        self.oid = oid


class ObjectCorrupt(ThetaError):
    def __init__(self, oid: str, message: str) -> None:
        super().__init__(message)
        self.oid = oid


class PluginError(ThetaError):
    """A plugin broke the rules of a hook (a name registered twice, a wrong object)."""


class SpecError(ThetaError):
    """A spec file (metadata, merge policy) does not follow its schema."""
