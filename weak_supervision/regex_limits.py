"""Static checks of a user's regular expression, made before it is ever compiled.

Compiling can cost far more than the pattern's length suggests: the ``regex`` engine expands
fixed repetitions, so ``(x{1000}){1000}`` (15 characters) allocates about 250 MB and
``((x{1000}){1000}){3}`` about 750 MB. Matching can cost time exponential in the text when an
unbounded repetition contains another one (``(a+)+``, ``(\\w+\\s?)*``: "star height" above one,
the rule ReDoS linters such as safe-regex apply). This module reads the pattern's structure
(groups, classes, escapes, quantifiers) without compiling it and refuses:

- patterns longer than MAX_PATTERN_CHARS;
- a repetition count above MAX_REPEAT, or nested counts whose product (times the repeated
  part's length) is above MAX_EXPANSION;
- an unbounded repetition of something that already holds an unbounded repetition;
- recursion and subroutine calls (``(?R)``, ``(?1)``, ``(?&name)``) and fuzzy matching
  (``{e<=2}``), which the ``regex`` package adds to Python's syntax and which have no bound.

What this cannot see (alternations that overlap, as ``(a|aa)+``) is left to the per-text
timeout and the time and memory limits of the process the pattern runs in
(`weak_supervision.sandbox`). No Django import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_PATTERN_CHARS = 2000
MAX_REPEAT = 1000
MAX_EXPANSION = 10_000

_COUNTED = re.compile(r"\{(\d*)(,?)(\d*)\}")
_FUZZY = re.compile(r"\{[^{}]*[<>=][^{}]*\}")
_CALL = re.compile(r"\(\?(?:R\)|[+-]?\d|&|P>)")


class PatternRejected(ValueError):
    """The pattern is refused before compiling; the message says why."""


@dataclass
class _Node:
    """A group being read: its length once expanded, and whether it holds an unbounded
    repetition (anywhere inside)."""

    size: int = 0
    unbounded: bool = False
    branch_sizes: list[int] = field(default_factory=list)

    def close(self) -> int:
        return max([*self.branch_sizes, self.size])


def _skip_class(pattern: str, start: int) -> int:
    """Index just after the character class opening at ``start``."""
    n = start + 1
    if n < len(pattern) and pattern[n] == "^":
        n += 1
    if n < len(pattern) and pattern[n] == "]":
        n += 1
    depth = 1
    while n < len(pattern):
        char = pattern[n]
        if char == "\\":
            n += 2
            continue
        if pattern.startswith("[:", n):
            end = pattern.find(":]", n + 2)
            if end != -1:
                n = end + 2
                continue
        if char == "[":
            depth += 1  # nested sets (regex's VERSION1 syntax); harmless otherwise
        elif char == "]":
            depth -= 1
            if depth == 0:
                return n + 1
        n += 1
    return n  # unterminated: the compiler reports it


def _skip_escape(pattern: str, start: int) -> int:
    """Index just after the escape at ``start`` (``\\p{L}``, ``\\N{...}``, ``\\g<1>`` whole)."""
    n = start + 1
    if n >= len(pattern):
        return n
    letter = pattern[n]
    n += 1
    if letter in "pPNx" and n < len(pattern) and pattern[n] == "{":
        end = pattern.find("}", n)
        return end + 1 if end != -1 else len(pattern)
    if letter == "g" and n < len(pattern) and pattern[n] == "<":
        end = pattern.find(">", n)
        return end + 1 if end != -1 else len(pattern)
    return n


def _group_body_start(pattern: str, start: int) -> tuple[int, bool]:
    """(index where the group's content starts, whether the group is a comment)."""
    n = start + 1
    if not pattern.startswith("?", n):
        return n, False
    if pattern.startswith("?#", n):
        return n, True
    for prefix in ("?P<", "?<"):
        if pattern.startswith(prefix, n) and not pattern.startswith(("?<=", "?<!"), n):
            end = pattern.find(">", n)
            return (end + 1 if end != -1 else len(pattern)), False
    if pattern.startswith("?P=", n):
        end = pattern.find(")", n)
        return (end if end != -1 else len(pattern)), False
    match = re.compile(r"\?(?:[aiLmsuxVw0-9-]*[:)]|<=|<!|=|!|>|\||\()").match(pattern, n)
    if match:
        body = match.end()
        # "(?i)" has no body: leave the ")" to close it.
        return (body - 1 if pattern[body - 1] in ")(" else body), False
    return n + 1, False


def _quantifier(pattern: str, n: int) -> tuple[int, int | None, int] | None:
    """(lowest, highest or None for unbounded, index after it) of a quantifier at ``n``."""
    if n >= len(pattern):
        return None
    char = pattern[n]
    if char in "*+?":
        low, high, end = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char] + (n + 1,)
    elif char == "{":
        if _FUZZY.match(pattern, n):
            raise PatternRejected(
                "Fuzzy matching ({e<=...}) is not allowed in a labeling function: it has no "
                "bound on its cost."
            )
        counted = _COUNTED.match(pattern, n)
        if counted is None or not (counted.group(1) or counted.group(3)):
            return None  # a literal "{"
        low = int(counted.group(1) or 0)
        high = None if counted.group(2) and not counted.group(3) else int(counted.group(3) or low)
        if not counted.group(2):
            high = low
        for count in (low, high):
            if count is not None and count > MAX_REPEAT:
                raise PatternRejected(
                    f"The repetition count {count} is above {MAX_REPEAT:,}: write a shorter "
                    "repetition or an unbounded one (+, *)."
                )
        end = counted.end()
    else:
        return None
    if end < len(pattern) and pattern[end] in "?+":
        end += 1  # lazy or possessive
    return low, high, end


def check_pattern(pattern: str) -> None:
    """Raise PatternRejected if ``pattern`` is too long, expands too far or nests unbounded
    repetitions. Syntax errors are left to the compiler."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternRejected(f"The pattern is longer than {MAX_PATTERN_CHARS:,} characters.")
    if _CALL.search(pattern):
        raise PatternRejected(
            "Recursive patterns and subroutine calls ((?R), (?1), (?&name)) are not allowed "
            "in a labeling function."
        )
    stack = [_Node()]
    n = 0
    while n < len(pattern):
        char = pattern[n]
        if char == "(":
            body, comment = _group_body_start(pattern, n)
            if comment:
                end = pattern.find(")", n)
                n = end + 1 if end != -1 else len(pattern)
                continue
            stack.append(_Node())
            n = body
            continue
        if char == "|":
            top = stack[-1]
            top.branch_sizes.append(top.size)
            top.size = 0
            n += 1
            continue
        if char == ")" and len(stack) > 1:
            node = stack.pop()
            atom_size, atom_unbounded = max(node.close(), 1), node.unbounded
            n += 1
        elif char in "*+?" or (char == "{" and _quantifier(pattern, n)):
            n += 1  # a quantifier with nothing before it: the compiler reports it
            continue
        elif char == "[":
            atom_size, atom_unbounded = 1, False
            n = _skip_class(pattern, n)
        elif char == "\\":
            atom_size, atom_unbounded = 1, False
            n = _skip_escape(pattern, n)
        else:
            atom_size, atom_unbounded = (0 if char in "^$" else 1), False
            n += 1
        quantifier = _quantifier(pattern, n)
        while quantifier is not None:
            low, high, n = quantifier
            if high is None and atom_unbounded:
                raise PatternRejected(
                    "Nested unbounded repetitions such as (a+)+ or (\\w+\\s?)* can take time "
                    "exponential in the text: repeat one level only (e.g. [\\w\\s]+ rather than "
                    "(\\w+\\s)+) or bound the outer repetition ({1,20})."
                )
            atom_size *= max(low if high is None else high, 1)
            atom_unbounded = atom_unbounded or high is None
            if atom_size > MAX_EXPANSION:
                raise PatternRejected(
                    f"The pattern's repetitions expand to more than {MAX_EXPANSION:,} "
                    "elements (nested counts such as (x{100}){1000} multiply): use smaller "
                    "counts or an unbounded repetition."
                )
            quantifier = _quantifier(pattern, n)
        top = stack[-1]
        top.size += atom_size
        top.unbounded = top.unbounded or atom_unbounded
        if top.size > MAX_EXPANSION:
            raise PatternRejected(
                f"The pattern's repetitions expand to more than {MAX_EXPANSION:,} elements."
            )
