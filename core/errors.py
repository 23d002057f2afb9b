"""Errors a user can hit: each message says what happened and what to do."""

from __future__ import annotations


class RapidQAError(Exception):
    """Base of every error shown to a user; `str(err)` is the whole message."""


class DocumentError(RapidQAError):
    """A PDF could not be read (missing, not a PDF, damaged, no text)."""


class PasswordRequired(DocumentError):
    """The PDF is encrypted and no password (or a wrong one) was given."""

    def __init__(self, message: str, *, wrong_password: bool = False) -> None:
        super().__init__(message)
        self.wrong_password = wrong_password


class ModelError(RapidQAError):
    """A model could not be found, loaded or paired with the other one."""


class TokenizerMismatch(ModelError):
    """Target and drafter do not share a tokenizer."""


class QuestionError(RapidQAError):
    """The question is empty or unusable."""


class ConfigError(RapidQAError):
    """A setting is out of range (gamma, eta, temperature, budget ...)."""


class Cancelled(RapidQAError):
    """The user cancelled the running job."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)


class LibraryError(RapidQAError):
    """The on-disk library cannot be opened or changed (damaged, full disk, wrong embedder)."""


class LibraryBusy(LibraryError):
    """Another RapidQA process is changing the same library right now."""


class VectorIndexError(RapidQAError):
    """Bad input to a vector index, or an index file that cannot be used."""
