"""One `paths:` entry of a rule, compiled: exact, prefix or glob over canonical paths."""

from __future__ import annotations

from authz_service.authz.globs import compile_glob
from authz_service.schema import PathMatch


class CompiledPathMatch:
    __slots__ = ("_exact", "_glob", "_prefix", "description")

    def __init__(self, spec: PathMatch):
        self._exact = spec.exact
        self._prefix = spec.prefix
        self._glob = compile_glob(spec.glob, slash_is_special=True) if spec.glob else None
        kind, value = next((k, v) for k, v in spec.model_dump().items() if v is not None)
        self.description = f"{kind} {value}"

    @property
    def first_segment(self) -> str | None:
        """The path's first segment if every path this matches starts with it, else None.

        "/api/" and "/api/x" and "/api/*" pin "api"; "/ap" (could be "/apis") and "/*" do not.
        """
        literal = self._exact if self._exact is not None else self._prefix
        if literal is None:
            assert self._glob is not None
            literal = self.description.split(" ", 1)[1]
        rest = literal[1:]
        segment, slash, _ = rest.partition("/")
        if any(ch in segment for ch in "*?"):
            return None
        if slash or self._exact is not None:
            return segment
        return None

    def matches(self, path: str) -> bool:
        if self._exact is not None:
            return path == self._exact
        if self._prefix is not None:
            return path.startswith(self._prefix)
        assert self._glob is not None
        return self._glob.fullmatch(path) is not None
