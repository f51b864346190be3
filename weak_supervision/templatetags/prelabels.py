"""Formatting helpers of the pre-label dashboard."""

from django import template

register = template.Library()


@register.filter
def pct(value, digits: int = 1) -> str:
    """0.1234 -> '12.3%'; None -> '—'."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def num(value, digits: int = 3) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value):.{int(digits)}f}"


@register.filter
def stage_name(value: str) -> str:
    return {
        "auto_label_model": "Auto-accepted (label model)",
        "auto_llm": "Auto-accepted (LLM)",
        "human": "Labeled by humans",
        "other_machine": "Other machine labels",
        "unsettled": "Not settled yet",
    }.get(value, value)
