"""Labeling functions cannot exhaust a host: a regex is checked before it is compiled, and
compiled and run in a child process under time and memory limits; a Python function's call is
interrupted at its time limit; a function that fails or is stopped says so on the dashboard,
and one stopped for timeouts is skipped by later applies until it changes."""

import os
import time

import pytest
from django.urls import reverse

from labeling.errors import ApplicationError
from labeling.models import Job, Membership
from tests.factories import MembershipFactory, UserFactory
from tests.weak_supervision.conftest import make_items
from weak_supervision import registry
from weak_supervision.lf_eval import LFConfigError, check_compiles, normalize_config
from weak_supervision.models import LabelingFunction, LFVote
from weak_supervision.regex_limits import PatternRejected, check_pattern
from weak_supervision.sandbox import LimitedRun, Limits, Status
from weak_supervision.selectors import lf_analysis
from weak_supervision.services.apply import apply_job_create, apply_run, lfs_stale
from weak_supervision.services.lfs import lf_create, lf_update

LABELS = ["spam", "ham"]
# Long enough to be "forever" next to the limits below, short enough that the code before
# the limits existed finished these tests (and failed them) instead of hanging the suite.
SPIN_SECONDS = 8


# --- the regex, before it is compiled ----------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(x{1000}){1000}", "expand to more than"),  # 15 characters, ~250 MB when compiled
        ("((x{1000}){1000}){3}", "expand to more than"),
        ("(?:x{100}){101}", "expand to more than"),
        ("x{5000}", "repetition count 5000"),
        ("(a+)+$", "Nested unbounded repetitions"),
        ("(a*)*b", "Nested unbounded repetitions"),
        (r"(\w+\s?)*$", "Nested unbounded repetitions"),
        ("(?R)?x", "Recursive patterns"),
        ("(spam){e<=2}", "Fuzzy matching"),
        ("x" * 2001, "longer than 2,000 characters"),
    ],
)
def test_patterns_that_would_exhaust_the_host_are_refused_before_compiling(pattern, why):
    with pytest.raises(PatternRejected, match=why):
        check_pattern(pattern)
    with pytest.raises(LFConfigError) as info:
        normalize_config(kind="regex", config={"label": "spam", "pattern": pattern}, labels=LABELS)
    assert info.value.field == "pattern"


@pytest.mark.parametrize(
    "pattern",
    [
        r"\bfree (entry|prize)\b",
        r"(?<!\w)£\d{1,6}",
        r"\d{3}[-. ]\d{4}",
        r"(\w+\s){1,20}now",
        r"(?i)[[:alpha:]]{2,}\s+\p{L}+",
        r"(?P<w>\w)(?P=w)",
        "x{1000}",
        "(ab|cd){100}",
        r"literal \{braces\} and a{b}",
    ],
)
def test_ordinary_patterns_pass_the_checks(pattern):
    check_pattern(pattern)
    normalize_config(kind="regex", config={"label": "spam", "pattern": pattern}, labels=LABELS)


def test_a_pattern_the_checks_cannot_see_still_compiles_under_the_memory_limit():
    # Given a pattern that needs ~250 MB to compile (skipping the static checks on purpose)
    # When it is compiled under a 64 MB limit
    with pytest.raises(LFConfigError) as info:
        check_compiles(
            "(x{1000}){1000}",
            case_sensitive=False,
            limits=Limits(call_seconds=30, memory_bytes=64 * 2**20),
        )
    # Then it is refused, naming the field and the limit, and this process never held it
    assert info.value.field == "pattern"
    assert "needs more than 64 MB to compile" in info.value.message


def test_an_invalid_pattern_is_still_reported_by_the_compiler():
    with pytest.raises(LFConfigError, match="Invalid regular expression: missing \\)"):
        normalize_config(kind="regex", config={"label": "spam", "pattern": "(a"}, labels=LABELS)


# --- the child process -------------------------------------------------------------------------


def _misbehave(i):
    if i == 1:
        while True:  # never returns, never yields to a signal handler's Python code
            pass
    if i == 2:
        raise ValueError("bad input")
    if i == 3:
        bytearray(1 << 30)  # over the 64 MB limit below
    if i == 4:
        os._exit(3)
    return i * 10


def test_a_call_past_its_time_limit_is_killed_and_the_next_ones_still_run():
    results = list(LimitedRun(_misbehave, 6, limits=Limits(0.2, memory_bytes=64 * 2**20)))

    assert [r.status for r in results] == [
        Status.OK,
        Status.TIMEOUT,
        Status.ERROR,
        Status.MEMORY,
        Status.CRASHED,
        Status.OK,
    ]
    assert [results[0].value, results[5].value] == [0, 50]
    assert results[2].message == "ValueError: bad input"
    assert "died" in results[4].message


def test_many_calls_share_one_child():
    run = LimitedRun(lambda i: i % 3, 5000, limits=Limits(5))
    values = [r.value for r in run]
    assert values == [i % 3 for i in range(5000)]
    assert run.forks == 1


# --- try on a sample ---------------------------------------------------------------------------


@pytest.fixture
def spinning_functions():
    @registry.labeling_function("spins")
    def spins(text):
        started = time.monotonic()
        while time.monotonic() - started < SPIN_SECONDS:
            pass
        return "spam"

    @registry.labeling_function("spins_on_x")
    def spins_on_x(text):
        return spins(text) if text.startswith("x") else "ham"

    @registry.labeling_function("spins_no_more")
    def spins_no_more(text):
        return "spam"

    yield
    for name in ("spins", "spins_on_x", "spins_no_more"):
        registry.unregister(name)


@pytest.fixture
def manager(spam_project):
    user = UserFactory(username="lf-manager")
    MembershipFactory(project=spam_project, user=user, role=Membership.Role.MANAGER)
    return user


def _api(project, path):
    return f"/api/projects/{project.pk}/{path}"


def test_the_api_refuses_a_catastrophic_regex_with_a_400_naming_the_field(
    client, spam_project, manager
):
    make_items(spam_project, ["x" * 50])
    client.force_login(manager)
    body = {"label": "spam", "pattern": "((x{1000}){1000}){3}"}  # 21 characters, ~750 MB

    created = client.post(
        _api(spam_project, "labeling-functions/"),
        {"name": "huge", "kind": "regex", "config": body},
        content_type="application/json",
    )
    tried = client.post(
        _api(spam_project, "labeling-functions/try/"),
        {"kind": "regex", "config": body},
        content_type="application/json",
    )

    for response in (created, tried):
        assert response.status_code == 400
        assert response.json()["field"] == "pattern"
        assert "expand to more than 10,000" in response.json()["detail"]
    assert not LabelingFunction.objects.exists()


def test_trying_a_function_that_never_returns_answers_with_its_timeouts(
    client, spam_project, manager, settings, spinning_functions
):
    # Given a Python function that spins, and a call limit of 0.2 s
    settings.WS_LF_CALL_TIME_LIMIT = 0.2
    settings.WS_LF_TRY_MAX_TIMEOUTS = 2
    make_items(spam_project, [f"text {n}" for n in range(5)])
    client.force_login(manager)

    # When it is tried on a sample
    response = client.post(
        _api(spam_project, "labeling-functions/try/"),
        {"kind": "python", "config": {"function": "spins"}},
        content_type="application/json",
    )

    # Then the request answers: the function timed out and was stopped, and voted nowhere
    assert response.status_code == 200
    result = response.json()
    assert result["votes"] == 0
    assert result["stats"]["timeouts"] == 2
    assert "The function timed out on 2 of 2 texts (limit 0.2 s per call)" in result["error"]


# --- apply -------------------------------------------------------------------------------------


def test_a_function_that_keeps_timing_out_is_stopped_shown_and_skipped_until_edited(
    client, spam_project, manager, settings, spinning_functions
):
    # Given a function that spins on every item, next to one that works
    settings.WS_LF_CALL_TIME_LIMIT = 0.1
    make_items(spam_project, [f"item {n}" for n in range(25)])
    slow = lf_create(project=spam_project, name="slow", kind="python", config={"function": "spins"})
    words = lf_create(
        project=spam_project,
        name="words",
        kind="keyword",
        config={"label": "ham", "keywords": ["item"]},
    )

    # When the functions are applied
    job = apply_run(job_id=apply_job_create(project=spam_project).pk)

    # Then the job succeeds for the keyword function and stops the spinning one: no votes,
    # failed with its reason, marked stopped at its version
    assert job.status == Job.Status.SUCCEEDED
    assert "stopped: slow" in job.message
    assert "timed out on 20 of 20 texts" in job.result["functions"][str(slow.pk)]["error"]
    assert not LFVote.objects.filter(lf=slow).exists()
    assert LFVote.objects.filter(lf=words).count() == 25
    slow.refresh_from_db()
    assert slow.applied_version == ""
    assert slow.stopped_version == "1.py" + registry.registered("spins").version
    row = next(r for r in lf_analysis(project=spam_project)["functions"] if r["id"] == slow.pk)
    assert row["stopped"]
    assert row["failed"]
    assert row["coverage"] is None

    # and the dashboard says it is stopped, with the reason, not "applied"
    client.force_login(manager)
    page = client.get(reverse("weak_supervision:dashboard", kwargs={"project_id": spam_project.pk}))
    html = page.content.decode()
    cell = html[html.index(f'data-lf-id="{slow.pk}"') :].split("</tr>")[0]
    assert 'data-state="stopped"' in cell
    assert "not run again until it changes" in cell
    assert "timed out on 20 of 20 texts" in cell

    # When the stale functions are applied again, the stopped one is not among them
    assert lfs_stale(project=spam_project) == []
    with pytest.raises(ApplicationError, match="stopped for timeouts \\(slow"):
        apply_job_create(project=spam_project)

    # When it is edited, the stop is lifted and the next apply runs it
    lf_update(lf=slow, config={"function": "spins_no_more"})
    slow.refresh_from_db()
    assert slow.stopped_version == ""
    assert slow.stopped_reason == ""
    assert [lf.pk for lf in lfs_stale(project=spam_project)] == [slow.pk]
    job = apply_run(job_id=apply_job_create(project=spam_project).pk)
    assert job.status == Job.Status.SUCCEEDED
    assert LFVote.objects.filter(lf=slow).count() == 25


def test_a_function_that_times_out_on_a_few_items_is_applied_with_a_warning(
    spam_project, settings, spinning_functions
):
    settings.WS_LF_CALL_TIME_LIMIT = 0.1
    make_items(spam_project, ["x marks"] + [f"plain {n}" for n in range(30)])
    lf = lf_create(
        project=spam_project, name="picky", kind="python", config={"function": "spins_on_x"}
    )

    job = apply_run(job_id=apply_job_create(project=spam_project).pk)

    assert job.status == Job.Status.SUCCEEDED
    assert LFVote.objects.filter(lf=lf).count() == 30
    lf.refresh_from_db()
    assert lf.applied_version
    assert not lf.stopped_version
    assert "ran out of time on 1 of 31 items" in lf.applied_stats["warning"]


def test_a_function_that_raised_everywhere_is_shown_as_failed_not_applied(
    client, spam_project, manager
):
    @registry.labeling_function("always_raises")
    def always_raises(text):
        raise KeyError("no such field")

    try:
        make_items(spam_project, ["one", "two"])
        lf = lf_create(
            project=spam_project, name="broken", kind="python", config={"function": "always_raises"}
        )
        apply_run(job_id=apply_job_create(project=spam_project).pk)

        client.force_login(manager)
        page = client.get(
            reverse("weak_supervision:dashboard", kwargs={"project_id": spam_project.pk})
        )
        html = page.content.decode()
        cell = html[html.index(f'data-lf-id="{lf.pk}"') :].split("</tr>")[0]
        assert 'data-state="failed"' in cell
        assert "failed</strong>: The function raised on 2 of 2 items" in cell
        assert "KeyError" in cell
        assert "Traceback" not in cell
        assert "applied" not in cell.split('data-state="failed"')[1]
    finally:
        registry.unregister("always_raises")
