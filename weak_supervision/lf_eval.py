"""Labeling functions as pure code: validate a specification, compile it once, vote on texts.

No Django import: the services load texts and specifications from the database, call these
functions, and write the votes in bulk. A vote is a label value (str) or ``None`` (abstain).

Kinds evaluated here (text in, vote out):
- ``keyword``: any of a list of keywords occurs in the text. Compiled into ONE alternation
  (longest keyword first) so a text is scanned once whatever the number of keywords.
- ``regex``: a regular expression (the ``regex`` package, Python ``re`` syntax), compiled once and
  run with a per-text timeout. A pattern that times out on a text abstains on it; a pattern that
  times out too often is stopped (``LFTooSlow``), which bounds the run time of a job whatever
  the pattern (catastrophic backtracking included).
- ``python``: a function registered in code (see ``weak_supervision.registry``).

``classifier`` functions vote from a trained model's stored predictions, not from the text; their
rule is `classifier_vote` and the service applies it in the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex

KINDS = ("keyword", "regex", "classifier", "python")
TEXT_KINDS = ("keyword", "regex", "python")
MAX_KEYWORDS = 500
MAX_KEYWORD_CHARS = 200
MAX_PATTERN_CHARS = 2000
DEFAULT_REGEX_TIMEOUT = 0.05
# A regex function is stopped once it has timed out on this many texts and on more than
# MAX_TIMEOUT_SHARE of those it ran on: a pattern that is slow everywhere must not cost
# (items x timeout) seconds.
MAX_TIMEOUTS = 20
MAX_TIMEOUT_SHARE = 0.01


class LFConfigError(ValueError):
    """The specification is invalid; ``field`` names the offending field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class LFTooSlow(RuntimeError):
    """A regular expression timed out on too many texts."""


@dataclass
class VoteStats:
    """What happened while a function voted (shown with the sample and on the job)."""

    evaluated: int = 0
    votes: int = 0
    timeouts: int = 0
    errors: int = 0
    invalid: int = 0
    first_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "evaluated": self.evaluated,
            "votes": self.votes,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "invalid": self.invalid,
            "first_error": self.first_error,
        }


def _clean_keywords(config: dict[str, Any]) -> list[str]:
    raw = config.get("keywords")
    if isinstance(raw, str):
        raw = [part for line in raw.splitlines() for part in line.split(",")]
    if not isinstance(raw, list):
        raise LFConfigError("Keywords must be a list of strings.", "keywords")
    keywords = []
    for n, word in enumerate(raw, start=1):
        if not isinstance(word, str):
            raise LFConfigError(f"Keyword {n} is not a string.", "keywords")
        word = word.strip()
        if not word:
            continue
        if len(word) > MAX_KEYWORD_CHARS:
            raise LFConfigError(
                f"Keyword {n} is longer than {MAX_KEYWORD_CHARS} characters.", "keywords"
            )
        keywords.append(word)
    keywords = list(dict.fromkeys(keywords))
    if not keywords:
        raise LFConfigError("Give at least one keyword.", "keywords")
    if len(keywords) > MAX_KEYWORDS:
        raise LFConfigError(f"At most {MAX_KEYWORDS} keywords per function.", "keywords")
    return keywords


def normalize_config(*, kind: str, config: dict[str, Any], labels: Sequence[str]) -> dict:
    """Validate a specification and return its canonical form (what is stored and hashed).

    Raises LFConfigError naming the field. ``labels`` is the project's label set."""
    if kind not in KINDS:
        raise LFConfigError(f"Unknown kind '{kind}'; use one of {', '.join(KINDS)}.", "kind")
    if not isinstance(config, dict):
        raise LFConfigError("The configuration must be an object.", "config")
    label = config.get("label")
    label_required = kind in ("keyword", "regex") or (kind == "classifier" and label)
    if label_required and not label:
        raise LFConfigError("Choose the label this function votes for.", "label")
    if label_required and label not in labels:
        raise LFConfigError(
            f"Label '{label}' is not in the project's label set ({', '.join(labels)}).",
            "label",
        )
    case_sensitive = bool(config.get("case_sensitive", False))
    if kind == "keyword":
        return {
            "label": label,
            "keywords": _clean_keywords(config),
            "case_sensitive": case_sensitive,
            "whole_word": bool(config.get("whole_word", True)),
        }
    if kind == "regex":
        pattern = config.get("pattern")
        if not isinstance(pattern, str) or not pattern.strip():
            raise LFConfigError("Give a regular expression.", "pattern")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise LFConfigError(
                f"The pattern is longer than {MAX_PATTERN_CHARS} characters.", "pattern"
            )
        _compile_pattern(pattern, case_sensitive)
        return {"label": label, "pattern": pattern, "case_sensitive": case_sensitive}
    if kind == "classifier":
        try:
            threshold = float(config.get("threshold", 0.9))
        except (TypeError, ValueError):
            raise LFConfigError("The threshold must be a number.", "threshold") from None
        if not 0.0 <= threshold <= 1.0:
            raise LFConfigError("The threshold must be between 0 and 1.", "threshold")
        source_id = config.get("source_id") or ""
        if not isinstance(source_id, str):
            raise LFConfigError("The model id must be a string.", "source_id")
        return {"label": label or None, "threshold": threshold, "source_id": source_id}
    # python
    name = config.get("function")
    if not isinstance(name, str) or not name:
        raise LFConfigError("Name the registered Python function.", "function")
    return {"function": name}


def _compile_pattern(pattern: str, case_sensitive: bool) -> regex.Pattern:
    flags = regex.VERSION0 | (0 if case_sensitive else regex.IGNORECASE)
    try:
        return regex.compile(pattern, flags)
    except (regex.error, ValueError, OverflowError, RecursionError) as exc:
        raise LFConfigError(f"Invalid regular expression: {exc}", "pattern") from None


def config_hash(*, kind: str, config: dict[str, Any]) -> str:
    """Fingerprint of a canonical specification: equal specifications, equal hashes."""
    blob = json.dumps({"kind": kind, "config": config}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class CompiledLF:
    """A text function ready to vote. ``vote_many`` updates ``stats``."""

    key: Any
    kind: str
    label: str | None
    _pattern: regex.Pattern | None = None
    _function: Callable[[str], Any] | None = None
    labels: frozenset[str] = frozenset()
    timeout: float = DEFAULT_REGEX_TIMEOUT
    stats: VoteStats = field(default_factory=VoteStats)

    def vote(self, text: str) -> str | None:
        self.stats.evaluated += 1
        if self._function is not None:
            return self._vote_python(text)
        assert self._pattern is not None
        try:
            hit = self._pattern.search(text, timeout=self.timeout)
        except TimeoutError:
            self.stats.timeouts += 1
            if (
                self.stats.timeouts >= MAX_TIMEOUTS
                and self.stats.timeouts > MAX_TIMEOUT_SHARE * self.stats.evaluated
            ):
                raise LFTooSlow(
                    f"The pattern timed out on {self.stats.timeouts} of "
                    f"{self.stats.evaluated} texts (limit {self.timeout:g} s per text); "
                    "simplify it (nested quantifiers such as (a+)+ backtrack exponentially)."
                ) from None
            return None
        if hit is None:
            return None
        self.stats.votes += 1
        return self.label

    def _vote_python(self, text: str) -> str | None:
        try:
            answer = self._function(text)  # type: ignore[misc]
        except Exception as exc:  # a user's function may raise anything; it abstains
            self.stats.errors += 1
            if not self.stats.first_error:
                self.stats.first_error = f"{type(exc).__name__}: {exc}"[:300]
            return None
        if answer is None:
            return None
        if answer not in self.labels:
            self.stats.invalid += 1
            if not self.stats.first_error:
                self.stats.first_error = f"returned {answer!r}, which is not a label"[:300]
            return None
        self.stats.votes += 1
        return answer

    def vote_many(self, texts: Sequence[str]) -> list[str | None]:
        return [self.vote(text) for text in texts]


def _keyword_pattern(word: str, *, whole_word: bool) -> str:
    """A keyword as a pattern. Whole-word boundaries only on an edge that is a word character,
    so "£" still matches in "£100" and "win" does not match in "wine"."""
    body = regex.escape(word)
    if not whole_word:
        return body
    before = r"(?<!\w)" if regex.match(r"\w", word[0]) else ""
    after = r"(?!\w)" if regex.match(r"\w", word[-1]) else ""
    return f"{before}{body}{after}"


def compile_lf(
    *,
    key: Any,
    kind: str,
    config: dict[str, Any],
    labels: Sequence[str],
    function: Callable[[str], Any] | None = None,
    timeout: float = DEFAULT_REGEX_TIMEOUT,
) -> CompiledLF:
    """Compile a validated text function. ``function`` is the resolved Python callable for
    kind ``python``."""
    if kind == "keyword":
        words = sorted(config["keywords"], key=len, reverse=True)
        whole = config.get("whole_word", True)
        pattern = "|".join(_keyword_pattern(w, whole_word=whole) for w in words)
        return CompiledLF(
            key=key,
            kind=kind,
            label=config["label"],
            _pattern=_compile_pattern(pattern, config.get("case_sensitive", False)),
            labels=frozenset(labels),
            timeout=timeout,
        )
    if kind == "regex":
        return CompiledLF(
            key=key,
            kind=kind,
            label=config["label"],
            _pattern=_compile_pattern(config["pattern"], config.get("case_sensitive", False)),
            labels=frozenset(labels),
            timeout=timeout,
        )
    if kind == "python":
        if function is None:
            raise LFConfigError(
                f"No registered Python function named '{config.get('function')}'.", "function"
            )
        return CompiledLF(
            key=key, kind=kind, label=None, _function=function, labels=frozenset(labels)
        )
    raise LFConfigError(f"Kind '{kind}' does not vote on text.", "kind")


def classifier_vote(
    *, labels: Sequence[str], confidence: float | None, threshold: float, label: str | None
) -> str | None:
    """A classifier function's rule: the model's label when its confidence reaches the
    threshold (and, if the function names a label, only that one)."""
    if not labels or confidence is None or confidence < threshold:
        return None
    top = labels[0]
    if label and top != label:
        return None
    return top
