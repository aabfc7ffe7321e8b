"""A hardened OAuth 2.0 password-grant token endpoint for Django, built on django-oauth-toolkit."""

__version__ = "0.1.0"
