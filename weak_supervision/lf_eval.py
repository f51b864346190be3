"""Labeling functions as pure code: validate a specification, compile it once, vote on texts.

No Django import: the services load texts and specifications from the database, call these
functions, and write the votes in bulk. A vote is a label value (str) or ``None`` (abstain).

Kinds evaluated here (text in, vote out):
- ``keyword``: any of a list of keywords occurs in the text. Compiled into ONE alternation
  (longest keyword first) so a text is scanned once whatever the number of keywords.
- ``regex``: a regular expression (the ``regex`` package, Python ``re`` syntax), checked before
  it is compiled (`weak_supervision.regex_limits`: length, repetition counts, nested unbounded
  repetitions), compiled in a child process under time and memory limits, and run with a
  per-text timeout.
- ``python``: a function registered in code (see ``weak_supervision.registry``).

`vote_limited` runs text functions in a forked child (`weak_supervision.sandbox`): a call past
the time limit is killed, an allocation past the memory limit fails in the child, and neither
touches the calling web process or worker. A call that times out abstains on its text; a
function that times out too often is stopped (``LFTooSlow`` / the ``stopped`` answer), which
bounds the run time of a job whatever the function (catastrophic backtracking, an infinite
loop).

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

from weak_supervision.regex_limits import PatternRejected, check_pattern
from weak_supervision.sandbox import LimitedRun, Limits, Status, default_error_text

KINDS = ("keyword", "regex", "classifier", "python")
TEXT_KINDS = ("keyword", "regex", "python")
MAX_KEYWORDS = 500
MAX_KEYWORD_CHARS = 200
DEFAULT_REGEX_TIMEOUT = 0.05
DEFAULT_LIMITS = Limits(call_seconds=2.0, memory_bytes=512 * 1024 * 1024)
# A text function is stopped once it has timed out on this many texts and on more than
# MAX_TIMEOUT_SHARE of those it ran on: a function that is slow everywhere must not cost
# (items x time limit) seconds.
MAX_TIMEOUTS = 20
MAX_TIMEOUT_SHARE = 0.01
_ABSTAIN = -1


class LFConfigError(ValueError):
    """The specification is invalid; ``field`` names the offending field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class LFTooSlow(RuntimeError):
    """A function timed out on too many texts."""


class NotALabel(ValueError):
    """A Python function answered something that is not one of the project's labels."""


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


def normalize_config(
    *, kind: str, config: dict[str, Any], labels: Sequence[str], limits: Limits = DEFAULT_LIMITS
) -> dict:
    """Validate a specification and return its canonical form (what is stored and hashed).

    Raises LFConfigError naming the field. ``labels`` is the project's label set; a regular
    expression is compiled under ``limits`` (in a child process) to check it."""
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
        try:
            check_pattern(pattern)
        except PatternRejected as exc:
            raise LFConfigError(str(exc), "pattern") from None
        check_compiles(pattern, case_sensitive=case_sensitive, limits=limits)
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


def _flags(case_sensitive: bool) -> int:
    return regex.VERSION0 | (0 if case_sensitive else regex.IGNORECASE)


def _compile_pattern(pattern: str, case_sensitive: bool) -> regex.Pattern:
    try:
        return regex.compile(pattern, _flags(case_sensitive))
    except (regex.error, ValueError, OverflowError, RecursionError) as exc:
        raise LFConfigError(f"Invalid regular expression: {exc}", "pattern") from None


def check_compiles(pattern: str, *, case_sensitive: bool, limits: Limits) -> None:
    """Compile ``pattern`` in a child process under ``limits``; LFConfigError (field
    ``pattern``) if it is invalid or needs more time or memory than the limits allow."""

    def compile_it(_: int) -> int:
        regex.compile(pattern, _flags(case_sensitive))
        return 0

    (result,) = list(
        LimitedRun(compile_it, 1, limits=limits, error_text=lambda exc: str(exc)[:300])
    )
    if result.status == Status.OK:
        return
    if result.status == Status.ERROR and result.error_type in ("error", "ValueError"):
        raise LFConfigError(f"Invalid regular expression: {result.message}", "pattern")
    if result.status == Status.TIMEOUT:
        reason = f"took more than {limits.call_seconds:g} s to compile"
    elif result.status in (Status.MEMORY, Status.CRASHED):
        reason = f"needs more than {limits.memory_bytes // 2**20:,} MB to compile"
    else:
        reason = f"could not be compiled ({result.error_type or result.status.name.lower()})"
    raise LFConfigError(f"The pattern {reason}: simplify it.", "pattern")


def config_hash(*, kind: str, config: dict[str, Any]) -> str:
    """Fingerprint of a canonical specification: equal specifications, equal hashes."""
    blob = json.dumps({"kind": kind, "config": config}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class CompiledLF:
    """A text function ready to vote; ``stats`` counts what happened. The pattern is compiled
    on first use, so in `vote_limited` it is compiled in the child, under its limits."""

    key: Any
    kind: str
    label: str | None
    pattern: str | None = None
    case_sensitive: bool = False
    _function: Callable[[str], Any] | None = None
    labels: frozenset[str] = frozenset()
    timeout: float = DEFAULT_REGEX_TIMEOUT
    stats: VoteStats = field(default_factory=VoteStats)
    max_timeouts: int = MAX_TIMEOUTS
    _compiled: regex.Pattern | None = field(default=None, repr=False)

    def raw_vote(self, text: str) -> str | None:
        """The vote, raising what the function raises (TimeoutError when a pattern times
        out, NotALabel for an answer outside the label set)."""
        if self._function is not None:
            answer = self._function(text)
            if answer is not None and answer not in self.labels:
                raise NotALabel(f"returned {answer!r}, which is not a label"[:300])
            return answer
        if self._compiled is None:
            assert self.pattern is not None
            self._compiled = _compile_pattern(self.pattern, self.case_sensitive)
        return self.label if self._compiled.search(text, timeout=self.timeout) else None

    def count(
        self,
        *,
        status: Status,
        vote: str | None,
        error_type: str = "",
        message: str = "",
        call_seconds: float | None = None,
        memory_bytes: int = 0,
    ) -> None:
        """Count one outcome; raise LFTooSlow once the function timed out too often."""
        stats = self.stats
        stats.evaluated += 1
        if status == Status.OK:
            stats.votes += vote is not None
            return
        if status == Status.TIMEOUT:
            stats.timeouts += 1
            if (
                stats.timeouts >= self.max_timeouts
                and stats.timeouts > MAX_TIMEOUT_SHARE * stats.evaluated
            ):
                raise LFTooSlow(self._too_slow(call_seconds))
            return
        if error_type == NotALabel.__name__:
            stats.invalid += 1
        else:
            stats.errors += 1
        if status == Status.MEMORY:
            message = f"MemoryError: over the memory limit of {memory_bytes // 2**20:,} MB"
        if not stats.first_error:
            stats.first_error = (message or status.name.lower())[:300]

    def _too_slow(self, call_seconds: float | None) -> str:
        done = f"on {self.stats.timeouts} of {self.stats.evaluated} texts"
        if self._function is not None:
            return (
                f"The function timed out {done} (limit {call_seconds or 0:g} s per call) and "
                "was stopped."
            )
        return (
            f"The pattern timed out {done} (limit {self.timeout:g} s per text) and was "
            "stopped; simplify it (nested quantifiers such as (a+)+ backtrack exponentially)."
        )

    def vote(self, text: str) -> str | None:
        """Vote in this process (trusted code, tests); `vote_limited` for a user's function."""
        try:
            vote = self.raw_vote(text)
        except TimeoutError:
            self.count(status=Status.TIMEOUT, vote=None)
            return None
        except NotALabel as exc:
            self.count(status=Status.ERROR, vote=None, error_type="NotALabel", message=str(exc))
            return None
        except Exception as exc:  # a user's function may raise anything; it abstains
            self.count(status=Status.ERROR, vote=None, message=default_error_text(exc))
            return None
        self.count(status=Status.OK, vote=vote)
        return vote

    def vote_many(self, texts: Sequence[str]) -> list[str | None]:
        return [self.vote(text) for text in texts]


@dataclass
class LimitedVotes:
    """What `vote_limited` returns: per function (in the order given), its votes, and the
    message of the functions stopped for timeouts (their votes are all None)."""

    votes: list[list[str | None]]
    stopped: dict[int, str]
    forks: int = 0


def vote_limited(
    lfs: Sequence[CompiledLF],
    texts: Sequence[str],
    *,
    limits: Limits = DEFAULT_LIMITS,
    error_text: Callable[[BaseException], str] = default_error_text,
) -> LimitedVotes:
    """Every function's votes on every text, computed in a child process under ``limits``
    (`weak_supervision.sandbox`). Updates each function's ``stats``."""
    n = len(texts)
    order = [sorted(lf.labels | ({lf.label} if lf.label else set())) for lf in lfs]
    votes: list[list[str | None]] = [[None] * n for _ in lfs]
    stopped: dict[int, str] = {}

    def call(task: int) -> int:
        which, position = divmod(task, n)
        vote = lfs[which].raw_vote(texts[position])
        return _ABSTAIN if vote is None else order[which].index(vote)

    def describe(exc: BaseException) -> str:
        return str(exc) if isinstance(exc, NotALabel) else error_text(exc)

    run = LimitedRun(
        call,
        n * len(lfs),
        limits=limits,
        skip=lambda task: task // n in stopped,
        error_key=lambda task: task // n,
        error_text=describe,
    )
    if n:
        for result in run:
            which, position = divmod(result.index, n)
            if result.status == Status.SKIPPED or which in stopped:
                continue
            vote = (
                order[which][result.value]
                if result.status == Status.OK and result.value != _ABSTAIN
                else None
            )
            try:
                lfs[which].count(
                    status=result.status,
                    vote=vote,
                    error_type=result.error_type,
                    message=result.message,
                    call_seconds=limits.call_seconds,
                    memory_bytes=limits.memory_bytes,
                )
            except LFTooSlow as exc:
                stopped[which] = str(exc)
                votes[which] = [None] * n
                run.restart()
                continue
            votes[which][position] = vote
    return LimitedVotes(votes=votes, stopped=stopped, forks=run.forks)


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
            pattern=pattern,
            case_sensitive=config.get("case_sensitive", False),
            labels=frozenset(labels),
            timeout=timeout,
        )
    if kind == "regex":
        return CompiledLF(
            key=key,
            kind=kind,
            label=config["label"],
            pattern=config["pattern"],
            case_sensitive=config.get("case_sensitive", False),
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
