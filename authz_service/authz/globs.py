"""Glob patterns compiled once at config load.

`*` matches any run of characters except `/`; `**` matches anything, `/` included. For hosts
and principals (no path structure) use `*` freely: it is compiled with `slash_is_special=False`.
"""

from __future__ import annotations

import re


def compile_glob(
    pattern: str, *, slash_is_special: bool = False, ignore_case: bool = False
) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*" if slash_is_special else ".*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]" if slash_is_special else ".")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts), re.IGNORECASE if ignore_case else 0)
