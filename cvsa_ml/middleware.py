from urllib.parse import urlsplit

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django_htmx.http import HttpResponseClientRedirect


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

    def handle_no_permission(self, request, view_func):
        """An htmx request (a key press after the session expired) would follow the
        redirect and swap the login page into the card: tell htmx to load the login page
        as the whole page instead, coming back to the page the user was on."""
        if request.headers.get("HX-Request") != "true":
            return super().handle_no_permission(request, view_func)
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        same_site = current.netloc in ("", request.get_host())
        back_to = (current.path + (f"?{current.query}" if current.query else "")) if same_site and current.path else "/"
        login = redirect_to_login(back_to, self.get_login_url(view_func), self.get_redirect_field_name(view_func))
        return HttpResponseClientRedirect(login["Location"])
