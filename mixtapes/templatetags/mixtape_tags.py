from django import template

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour up; empty input gives 0:00."""
    total = round(seconds or 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@register.filter
def minutes(delta) -> str:
    """A timedelta as "15 minutes", "1 minute" or "2 hours" (whole hours only)."""
    total = max(1, round(delta.total_seconds() / 60))
    if total % 60 == 0:
        hours = total // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{total} minute{'s' if total != 1 else ''}"
