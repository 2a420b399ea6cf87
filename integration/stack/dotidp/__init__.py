"""A second identity provider for the end-to-end tests: django-oauth-toolkit (DOT).

- ``settings.py``, ``urls.py``, ``templates/``: a minimal Django project with DOT under
  ``/o/`` (the issuer) and Django's login form (test-only);
- ``server.py``: the child process (``python -m stack.dotidp.server``), prints ``READY``;
- ``launch.py``: ``start_dot(...)`` starts it from the tests and returns a ``DotIdP``;
- ``introspection_gate.py``: ``IntrospectionGate``, the shared ``Gate`` checking DOT's
  opaque access tokens at DOT's introspection endpoint instead of as JWTs.

Importing this package does not import Django.
"""
