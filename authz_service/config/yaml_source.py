"""Parse a YAML config document once: its data, the line of every field, and no duplicate keys.

One pass of the C parser (libyaml) where PyYAML was built with it: the node tree gives both
the line numbers for error messages and the data, so a 5,000-rule policy is parsed once, not
twice with the pure-Python parser. Two equal keys in one mapping are an error naming both
lines: PyYAML would silently keep the last one (a second `public:` policy replacing the first).
"""

from __future__ import annotations

from typing import Any

import yaml

from authz_service.config.errors import ConfigError

LinePath = tuple[str | int, ...]

# The C loader when PyYAML has libyaml; the same results, several times faster.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


class _Walk:
    """Records the line of every field path and every key repeated in its mapping."""

    def __init__(self, loader: yaml.SafeLoader, source: str) -> None:
        self._loader = loader
        self._source = source
        self.lines: dict[LinePath, int] = {}
        self.duplicates: list[str] = []
        self._seen: set[int] = set()

    def node(self, node: yaml.Node, path: LinePath) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        # An alias is the anchored node again: walked once, so that a self-referencing
        # anchor cannot recurse forever and nested aliases cannot multiply the walk.
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            self._mapping(node, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.node(item, (*path, index))

    def _mapping(self, node: yaml.MappingNode, path: LinePath) -> None:
        first_line: dict[object, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *anchor` merges another mapping: not a key of its own
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            identity = self._identity(key_node)
            if identity in first_line:
                field = ".".join(str(part) for part in (*path, name))
                self.duplicates.append(
                    f"{self._source}:{line}: {field}: duplicate key {name!r} "
                    f"(first at {self._source}:{first_line[identity]})"
                )
                continue
            first_line[identity] = line
            # The key's own line for the entry, not the value's first line.
            self.lines[(*path, name)] = line
            self.node(value_node, (*path, name))

    def _identity(self, key_node: yaml.Node) -> object:
        # Keys compare as the values the loader makes of them: `true` and `True` are one key.
        if key_node.tag == _STR_TAG:
            return key_node.value  # nearly every key: no need to construct it
        if isinstance(key_node, yaml.ScalarNode):
            value = self._loader.construct_object(key_node)
            try:
                hash(value)
            except TypeError:
                return (key_node.tag, key_node.value)
            return (type(value).__name__, value)
        return (key_node.tag, id(key_node))


def parse_yaml(text: str, source: str) -> tuple[Any, dict[LinePath, int]]:
    """Parse YAML, returning the data and a map from field path to line number.

    Raises ConfigError for invalid YAML and for keys repeated within a mapping.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        walk = _Walk(loader, source)
        walk.node(node, ())
        if walk.duplicates:
            raise ConfigError("\n".join(walk.duplicates))
        data = loader.construct_document(node)
    except yaml.YAMLError as error:
        raise _syntax_error(text, source, error) from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return data, walk.lines


def _syntax_error(text: str, source: str, error: yaml.YAMLError) -> ConfigError:
    """The error as the pure-Python parser words it: the same message whether or not this
    PyYAML has libyaml (whose wording differs), at the cost of a second parse of a bad file."""
    if _Loader is not yaml.SafeLoader:
        try:
            yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as python_error:
            error = python_error
        except RecursionError:
            pass  # the C parser's message, then
    mark = getattr(error, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    problem = getattr(error, "problem", None) or str(error)
    return ConfigError(f"{where}: invalid YAML: {problem}")
