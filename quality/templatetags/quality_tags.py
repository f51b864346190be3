from django import template

register = template.Library()


@register.filter
def fig(value, digits=3):
    """A figure's value with `digits` decimals, or 'n/a' when undefined."""
    if value is None:
        return "n/a"
    try:
        return f"{float(value):.{int(digits)}f}"
    except (TypeError, ValueError):
        return "n/a"


@register.filter
def pct(value):
    if value is None:
        return "n/a"
    return f"{100 * float(value):.1f}%"


@register.filter
def index(sequence, position):
    try:
        return sequence[int(position)]
    except (IndexError, TypeError, ValueError, KeyError):
        return None
