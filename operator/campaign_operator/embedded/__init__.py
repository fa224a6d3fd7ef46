"""Embedded mode: `campaign run` executes a campaign on a local Ray with a SQLite state store."""
