"""Strict reading of YAML into frozen dataclasses: a node reader that collects located errors, and
declared field tables. Used by the config loader and by each probe type for its own options."""
from .fields import (Field, Section, read_fields, boolean, byte_size, choice, clock_time, converted, duration, existing_file, integer,
                     keys_of, list_of, one_of, ratio, read_table, regex, secret_file, section, string)
from .reader import ENV_REF, MISSING, ConfigError, ConfigIssue, Reader, child, join, kind_of, pytype
from .regex import Regex

__all__ = ["ENV_REF", "MISSING", "ConfigError", "ConfigIssue", "Field", "Reader", "Regex", "Section", "boolean", "byte_size", "child", "choice",
           "clock_time", "converted", "duration", "existing_file", "integer", "join", "keys_of", "kind_of", "list_of",
           "one_of", "pytype", "ratio", "read_fields", "read_table", "regex", "secret_file", "section", "string"]
