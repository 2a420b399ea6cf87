"""Run the test-only django-oauth-toolkit (DOT) identity provider on 127.0.0.1.

Usage (from the ``integration`` directory, so that the package ``stack`` imports)::

    python -m stack.dotidp.server --db PATH [--template PATH] [--port N] [--watch-stdin]

Prints ``READY <issuer>`` (``http://127.0.0.1:P/o``) once it serves, after one
``TIMING ...`` line (how long the database and start-up took). ``--watch-stdin`` stops the
server when stdin reaches EOF, so a test process that dies does not leave it running.

The database is a fresh sqlite file at ``--db``. With ``--template``, an existing template
file is copied instead of migrating (about 1 ms against 0.8 s); a missing template is
written after the migration, for the next start.

What it creates at start (secrets from ``DOT_CLIENT_SECRETS``, a JSON object
``{client_id: secret}``; a missing one is random):

- the user ``DOT_USER`` (default ``alice``) with the password ``DOT_PASSWORD``;
- ``crane-dot``: public client, device grant (refresh tokens come with it);
- ``crane-dot-confidential``: confidential client, device grant, a client secret;
- ``crane-dot-ci``: confidential client, client-credentials grant;
- ``crane-dot-gate``: confidential client for the gate's introspection requests.

Settings from the environment (see ``settings.py``): ``DOT_ACCESS_TTL`` (seconds, 300),
``DOT_REFRESH_TTL`` (86400), ``DOT_SCOPES`` (space-separated, ``index:read``), ``DOT_OIDC``
(``1``: OpenID Connect on, with an RSA key made at start), ``DOT_COMPLETE_URI`` (``1``: send
``verification_uri_complete``), ``DOT_INTERVAL`` (device polling interval, 1).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path

PUBLIC_DEVICE_CLIENT = "crane-dot"
CONFIDENTIAL_DEVICE_CLIENT = "crane-dot-confidential"
CLIENT_CREDENTIALS_CLIENT = "crane-dot-ci"
GATE_CLIENT = "crane-dot-gate"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# (client_id, client_type, authorization_grant_type)
CLIENTS = (
    (PUBLIC_DEVICE_CLIENT, "public", DEVICE_GRANT),
    (CONFIDENTIAL_DEVICE_CLIENT, "confidential", DEVICE_GRANT),
    (CLIENT_CREDENTIALS_CLIENT, "confidential", "client-credentials"),
    (GATE_CLIENT, "confidential", "client-credentials"),
)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--template", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--watch-stdin", action="store_true")
    return parser.parse_args(argv)


def _rsa_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _prepare_database(db: Path, template: Path | None) -> bool:
    """Copy the template, or migrate (and write the template). True when it migrated."""
    if template is not None and template.is_file():
        shutil.copyfile(template, db)
        return False
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    if template is not None:
        from django.db import connections

        connections.close_all()
        part = template.with_name(f"{template.name}.{os.getpid()}.part")
        shutil.copyfile(db, part)
        part.replace(template)  # atomic: a concurrent start sees all of it or nothing
    return True


def _create_objects(oidc: bool) -> None:
    from django.contrib.auth import get_user_model
    from oauth2_provider.models import get_application_model

    given = json.loads(os.environ.get("DOT_CLIENT_SECRETS") or "{}")
    user_model = get_user_model()
    user_model.objects.create_user(
        os.environ.get("DOT_USER", "alice"), password=os.environ.get("DOT_PASSWORD", "alice")
    )
    application = get_application_model()
    for client_id, client_type, grant in CLIENTS:
        secret = given.get(client_id) or secrets.token_urlsafe(32)
        application.objects.create(
            name=client_id,
            client_id=client_id,
            client_secret=secret,
            client_type=client_type,
            authorization_grant_type=grant,
            algorithm="RS256" if oidc and grant == DEVICE_GRANT else "",
        )


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()

    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        # without it every keep-alive answer waits ~40 ms for the client's delayed ACK
        disable_nagle_algorithm = True

    httpd = ThreadedWSGIServer((args.host, args.port), Handler)
    port = httpd.server_address[1]
    issuer = f"http://{args.host}:{port}/o"

    oidc = os.environ.get("DOT_OIDC", "1") == "1"
    os.environ.update(
        DOT_ISSUER=issuer,
        DOT_DB=str(args.db),
        DOT_SECRET_KEY=secrets.token_urlsafe(40),
        DJANGO_SETTINGS_MODULE="stack.dotidp.settings",
    )
    if oidc and not os.environ.get("DOT_RSA_KEY"):
        os.environ["DOT_RSA_KEY"] = _rsa_key_pem()
    keyed = time.monotonic()

    import django

    django.setup()
    loaded = time.monotonic()
    migrated = _prepare_database(args.db, args.template)
    database = time.monotonic()
    _create_objects(oidc)

    from django.core.wsgi import get_wsgi_application

    httpd.set_app(get_wsgi_application())
    done = time.monotonic()
    print(
        f"TIMING total={done - started:.3f}s key={keyed - started:.3f}s "
        f"django={loaded - keyed:.3f}s "
        f"{'migrate' if migrated else 'template'}={database - loaded:.3f}s "
        f"objects={done - database:.3f}s",
        flush=True,
    )
    if args.watch_stdin:

        def watch() -> None:
            for _ in sys.stdin:
                pass
            httpd.shutdown()

        threading.Thread(target=watch, name="watch-stdin", daemon=True).start()
    print(f"READY {issuer}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
