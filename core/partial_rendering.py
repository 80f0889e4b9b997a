"""Choosing between a full page and an htmx partial."""


def wants_partial(request) -> bool:
    """An htmx swap gets the partial; a history restore (cache miss after Back) needs the
    full page, because htmx then swaps the response in as the whole body."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def page_or_partial(request, template: str, partial: str) -> str:
    return f"{template}#{partial}" if wants_partial(request) else template
