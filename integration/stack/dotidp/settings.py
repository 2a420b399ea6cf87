"""Django settings of the test-only django-oauth-toolkit identity provider.

Everything that varies per instance comes from ``DOT_*`` environment variables, which
``server.py`` sets before Django starts (see its docstring). Nothing here is meant for
production: a fast password hasher, a throw-away secret key, plain HTTP on 127.0.0.1.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"{name} is not set: start the IdP through server.py")
    return value


ISSUER = _env("DOT_ISSUER")  # http://127.0.0.1:P/o
SCOPES = _env("DOT_SCOPES", "index:read").split()
OIDC = _env("DOT_OIDC", "1") == "1"

SECRET_KEY = _env("DOT_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "stack.dotidp.urls"
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _env("DOT_DB"),
        # the gate's introspections and the device's polls come in on several threads
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A test IdP: the default PBKDF2 (a million rounds) would cost ~0.5 s for every client
# authentication, i.e. every introspection the gate makes. DOT hashes client secrets too.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "/accounts/login/"

OAUTH2_PROVIDER = {
    "SCOPES": {scope: f"the scope {scope}" for scope in SCOPES},
    "DEFAULT_SCOPES": [scope for scope in SCOPES if scope != "openid"],
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(_env("DOT_ACCESS_TTL", "300")),
    "REFRESH_TOKEN_EXPIRE_SECONDS": int(_env("DOT_REFRESH_TTL", "86400")),
    "ROTATE_REFRESH_TOKEN": True,
    # a rotated refresh token presented again revokes the whole family (RFC 9700 4.14.2)
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "DEVICE_FLOW_INTERVAL": int(_env("DOT_INTERVAL", "1")),
    "OAUTH_DEVICE_VERIFICATION_URI": ISSUER + "/device/",
    "OAUTH_DEVICE_VERIFICATION_URI_COMPLETE": (
        ISSUER + "/device/?user_code={user_code}" if _env("DOT_COMPLETE_URI", "0") == "1" else None
    ),
    "OIDC_ENABLED": OIDC,
    "OIDC_ISS_ENDPOINT": ISSUER,
    "OIDC_RSA_PRIVATE_KEY": _env("DOT_RSA_KEY", "") if OIDC else "",
    "PKCE_REQUIRED": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(name)s %(levelname)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        # one line per request (runserver's format), and every traceback of a 500
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "oauth2_provider": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "oauthlib": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
