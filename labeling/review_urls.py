"""Page routes, included by the app's ``urls.py`` (same namespace)."""

urlpatterns: list = []
