"""crane's integration stack: IdP (idp.mjs), indexes, auth gate, test wheels, headless user.

Test-only code. Imported by ``integration/conftest.py`` as the package ``stack``.
"""
