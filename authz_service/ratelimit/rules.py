"""Compile envoyproxy/ratelimit documents into an immutable lookup tree.

Matching follows envoyproxy/ratelimit (src/config/config_impl.go, GetLimit):
- entries are walked level by level; at each level an exact `key`+`value` node wins, then the
  first wildcard value (in file order) that matches, then the `key`-only node;
- a limit applies only when the request's last entry lands on a node with a limit: a request
  deeper or shallower than the config gets no limit;
- `unlimited` and `replaces` are resolved per request by the limiter.
One deliberate difference: a wildcard matches the value only, with the key compared exactly
(Go matches `key_value` as one string, so key `a` value `b_*` also caught key `a_b`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authz_service.config.loader import (
    ConfigError,
    LinePath,
    LoadedConfig,
    parse_yaml,
    read_file,
    validate_document,
)
from authz_service.schema import Algorithm, DescriptorSpec, DomainSpec, Unit

Entry = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Limit:
    """One quota: `requests_per_unit` per `window_s` seconds, counted by `algorithm`."""

    requests_per_unit: int
    unit: Unit  # what Envoy is told (x-ratelimit-limit's `w=`)
    window_s: float
    algorithm: Algorithm = "fixed_window"
    name: str = ""
    unlimited: bool = False
    shadow_mode: bool = False
    charge_rejected: bool = True
    replaces: frozenset[str] = frozenset()
    index: int = 0  # position among several limits on one descriptor: keeps counters apart

    @property
    def counter_tag(self) -> str:
        """Distinguishes counters of different limits on the same descriptor."""
        return f"{self.algorithm[0]}{round(self.window_s * 1000)}.{self.index}"


@dataclass(frozen=True, slots=True)
class Match:
    limits: tuple[Limit, ...]
    # The entries that name the counter: the request's, with a wildcard pattern in place of the
    # value where the config says `share_threshold` (one counter shared by all matching values).
    counter_entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class _Wildcard:
    key: str
    parts: tuple[str, ...]
    node: _Node
    pattern: str
    shared: bool

    def matches(self, key: str, value: str) -> bool:
        return key == self.key and _wildcard_match(self.parts, value)


@dataclass(frozen=True, slots=True)
class _Node:
    limits: tuple[Limit, ...] = ()
    by_value: Mapping[Entry, _Node] = field(default_factory=dict)
    by_key: Mapping[str, _Node] = field(default_factory=dict)
    wildcards: tuple[_Wildcard, ...] = ()


def _wildcard_match(parts: tuple[str, ...], value: str) -> bool:
    """`*` matches any run of characters (possibly empty), anywhere in the pattern."""
    first, last = parts[0], parts[-1]
    if len(value) < sum(len(p) for p in parts):
        return False
    if not value.startswith(first) or not value.endswith(last):
        return False
    rest = value[len(first) : len(value) - len(last)]
    for part in parts[1:-1]:
        found = rest.find(part)
        if found < 0:
            return False
        rest = rest[found + len(part) :]
    return True


class RateLimitRules:
    """All domains, compiled. Immutable: a reload builds a new one and swaps it in."""

    __slots__ = ("_domains",)

    def __init__(self, domains: Mapping[str, _Node]) -> None:
        self._domains = dict(domains)

    @property
    def domains(self) -> frozenset[str]:
        return frozenset(self._domains)

    def has_domain(self, domain: str) -> bool:
        return domain in self._domains

    def match(self, domain: str, entries: Sequence[Entry]) -> Match | None:
        node = self._domains.get(domain)
        if node is None or not entries:
            return None
        counter_entries: list[Entry] = []
        for key, value in entries:
            child = node.by_value.get((key, value))
            counter_value = value
            if child is None:
                for wildcard in node.wildcards:
                    if wildcard.matches(key, value):
                        child = wildcard.node
                        counter_value = wildcard.pattern if wildcard.shared else value
                        break
            if child is None:
                child = node.by_key.get(key)
            if child is None:
                return None
            counter_entries.append((key, counter_value))
            node = child
        if not node.limits:
            return None
        return Match(node.limits, tuple(counter_entries))

    def explicit_values(self, domain: str, key: str) -> set[str]:
        """Every value written for `key` anywhere in the domain (for coverage reports)."""
        values: set[str] = set()
        pending = [self._domains[domain]] if domain in self._domains else []
        while pending:
            node = pending.pop()
            for (entry_key, entry_value), child in node.by_value.items():
                if entry_key == key:
                    values.add(entry_value)
                pending.append(child)
            pending.extend(node.by_key.values())
            pending.extend(wildcard.node for wildcard in node.wildcards)
        return values

    def get_limits(self, domain: str, entries: Sequence[Entry]) -> list[Limit]:
        found = self.match(domain, entries)
        return list(found.limits) if found else []


@dataclass(frozen=True, slots=True)
class DomainSource:
    """A validated document and where it came from, for error messages."""

    spec: DomainSpec
    source: str
    lines: Mapping[LinePath, int] = field(default_factory=dict)
    path_prefix: tuple[str | int, ...] = ()


def _where(origin: DomainSource, path: tuple[str | int, ...]) -> str:
    full = (*origin.path_prefix, *path)
    probe = full
    while probe and probe not in origin.lines:
        probe = probe[:-1]
    line = origin.lines.get(probe)
    field_name = ".".join(str(p) for p in full)
    return f"{origin.source}:{line}: {field_name}" if line else f"{origin.source}: {field_name}"


def _compile_node(spec: DescriptorSpec, origin: DomainSource, path: tuple[str | int, ...]) -> _Node:
    limits = tuple(
        Limit(
            requests_per_unit=item.requests_per_unit,
            unit=item.reported_unit,
            window_s=item.window_seconds,
            algorithm="token_bucket" if item.algorithm == "gcra" else item.algorithm,
            name=item.name,
            unlimited=item.unlimited,
            shadow_mode=spec.shadow_mode,
            charge_rejected=item.charges_rejected,
            replaces=frozenset(r.name for r in item.replaces),
            index=index,
        )
        for index, item in enumerate(spec.limits)
    )
    return _compile_children(spec.descriptors, origin, path, limits)


def _compile_children(
    children: Sequence[DescriptorSpec],
    origin: DomainSource,
    path: tuple[str | int, ...],
    limits: tuple[Limit, ...] = (),
) -> _Node:
    by_value: dict[Entry, _Node] = {}
    by_key: dict[str, _Node] = {}
    wildcards: list[_Wildcard] = []
    seen: set[Entry] = set()
    for index, child in enumerate(children):
        child_path = (*path, "descriptors", index)
        ident = (child.key, child.value)
        if ident in seen:
            shown = f"{child.key}_{child.value}" if child.value else child.key
            raise ConfigError(
                f"{_where(origin, child_path)}: duplicate descriptor composite key "
                f"'{origin.spec.domain}.{shown}'"
            )
        seen.add(ident)
        node = _compile_node(child, origin, child_path)
        if not child.value:
            by_key[child.key] = node
            continue
        # A wildcard value also matches itself literally, as in envoyproxy/ratelimit.
        by_value[ident] = node
        if "*" in child.value:
            parts = tuple(child.value.split("*"))
            wildcards.append(_Wildcard(child.key, parts, node, child.value, child.share_threshold))
    return _Node(limits, by_value, by_key, tuple(wildcards))


def compile_rules(sources: Iterable[DomainSource]) -> RateLimitRules:
    """Compile validated documents; a domain defined twice is an error naming both places."""
    domains: dict[str, _Node] = {}
    origins: dict[str, str] = {}
    for origin in sources:
        name = origin.spec.domain
        if name in domains:
            raise ConfigError(
                f"{_where(origin, ('domain',))}: duplicate domain '{name}' "
                f"(already defined in {origins[name]})"
            )
        domains[name] = _compile_children(origin.spec.descriptors, origin, ())
        origins[name] = origin.source
    return RateLimitRules(domains)


def parse_domain_document(text: str, source: str) -> DomainSource:
    """Validate one envoyproxy/ratelimit YAML document; errors name file, line and field."""
    data, lines = parse_yaml(text, source)
    spec = validate_document(DomainSpec, data, source, lines)
    return DomainSource(spec, source, lines)


def load_domain_file(path: Path) -> DomainSource:
    raw = read_file(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_domain_document(text, str(path))


def config_files(directory: Path) -> list[Path]:
    """The YAML files of a config directory, in name order (so errors are reproducible)."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: rate-limit config_dir is not a directory")
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_rate_limit_rules(
    config_dir: Path | None = None,
    inline: Sequence[DomainSpec] = (),
    inline_source: str = "<config>",
    inline_lines: Mapping[Any, int] | None = None,
    base_dir: Path | None = None,
) -> RateLimitRules:
    """Compile a directory of files and/or inline documents (our config's `rate_limit.domains`).

    A relative `config_dir` is read from `base_dir` (the main config file's directory).
    `inline_source`/`inline_lines` are the main config file's name and line map, so errors in
    inline documents point at `config.yaml:LINE: rate_limit.domains.0...`.
    """
    if config_dir is not None and base_dir is not None and not config_dir.is_absolute():
        config_dir = base_dir / config_dir
    sources: list[DomainSource] = []
    if config_dir is not None:
        sources.extend(load_domain_file(path) for path in config_files(config_dir))
    sources.extend(
        DomainSource(spec, inline_source, inline_lines or {}, ("rate_limit", "domains", index))
        for index, spec in enumerate(inline)
    )
    return compile_rules(sources)


def rules_of_loaded_config(loaded: LoadedConfig) -> RateLimitRules | None:
    """The rate-limit rules of a loaded main config (its `rate_limit` files and inline
    domains, errors pointing into the config file), or None without a `rate_limit` section."""
    settings = loaded.config.rate_limit
    if settings is None:
        return None
    return load_rate_limit_rules(
        settings.config_dir,
        settings.domains,
        str(loaded.path),
        loaded.lines,
        base_dir=loaded.path.parent,
    )
