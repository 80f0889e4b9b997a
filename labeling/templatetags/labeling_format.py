"""How the labeling pages write a video's numbers."""

from django import template

register = template.Library()


@register.filter
def clock_duration(seconds) -> str:
    """Seconds as a clock reads them: 95 → "1:35", 3725 → "1:02:05" ("" when unknown)."""
    if seconds is None or seconds == "":
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
