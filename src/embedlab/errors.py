"""Errors that tell the user what was wrong and how to fix it. Each family has its own exit code
(README "Errors and exit codes"): a script's caller can tell a typo from a missing file."""

from __future__ import annotations


class EmbedlabError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 1


class ConfigError(EmbedlabError):
    """A configuration value is unknown or inconsistent with another (also a refused checkpoint)."""

    exit_code = 2


class DataError(EmbedlabError):
    """A data set is missing, malformed or holds invalid rows."""

    exit_code = 3


class ModelUnavailableError(EmbedlabError):
    """A model cannot be found locally and cannot be downloaded."""

    exit_code = 4
