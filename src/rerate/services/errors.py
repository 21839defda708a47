"""Errors a user can act on.  Entry points show their message, never a traceback."""

from __future__ import annotations


class RerateError(Exception):
    """Base of every error whose message is meant for the operator."""

    exit_code = 1


class NotFoundError(RerateError):
    """A named customer, account, vendor, tariff or collection does not exist."""


class ConflictError(RerateError):
    """The request contradicts what is already recorded."""


class InvalidInputError(RerateError):
    """A file or a value is not what the command expects."""

    exit_code = 2


class DamagedFileError(InvalidInputError):
    """A compressed file whose stream breaks off partway (truncated, a bad checksum): found only
    while it is read, and it leaves no collection behind."""


class JobNotScheduledError(ConflictError):
    """A scheduled job was cancelled or taken by another runner before this one could start it."""


class LedgerBusyError(RerateError):
    """Another job holds the ledger's write lock."""


class CacheDriftError(RerateError):
    """The aggregates disagree with the XDRs they were computed from; ``rerate cache sync`` repairs them."""
