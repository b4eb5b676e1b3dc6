"""Errors that tell the user what was wrong and how to fix it."""

from __future__ import annotations


class EmbedlabError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class ModelUnavailableError(EmbedlabError):
    """A model cannot be found locally and cannot be downloaded."""


class DataError(EmbedlabError):
    """A data set is missing, malformed or holds invalid rows."""


class ConfigError(EmbedlabError):
    """A configuration value is unknown or inconsistent with another."""
