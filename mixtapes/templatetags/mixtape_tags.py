from django import template

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour up; empty input gives 0:00."""
    total = round(seconds or 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
