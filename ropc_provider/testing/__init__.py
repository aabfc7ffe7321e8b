"""Test support for host projects: factories and a pytest plugin.

Installing ropc-provider registers the plugin with pytest (a ``pytest11`` entry point); its
fixtures need pytest-django and factory-boy (``pip install "ropc-provider[testing]"``). Nothing
here changes a setting: for fast tests, put Django's ``MD5PasswordHasher`` first in your test
settings' ``PASSWORD_HASHERS``, as Django's own testing documentation advises.
"""
