"""The one exception a config file that cannot be used raises (a leaf module: no imports)."""

from __future__ import annotations


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, line and field."""
