"""Checks run before any port opens, so that a start fails at once with one clear line: every
listen address can be bound (ports.py), and the connection caps fit the open-file limit
(open_files.py)."""
