from django.contrib.auth.middleware import LoginRequiredMiddleware


class PagesLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Login required for every page; API views are left to DRF.

    DRF authenticates tokens as well as sessions and answers 401/403 JSON, which a
    script needs instead of a redirect to the login page. DRF's ``as_view`` marks its
    views with ``cls``; their permission classes (IsAuthenticated by default) apply.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if hasattr(view_func, "cls"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
