"""URLs of the test-only DOT identity provider: DOT under ``/o/`` (the issuer) and
Django's login form under ``/accounts/login/`` (DOT's device pages need a signed-in user)."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
]
