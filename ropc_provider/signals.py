from django.dispatch import Signal

# A password grant succeeded: ``user``, ``request`` (the Django request). Never carries the password.
sign_in_succeeded = Signal()
# A password grant's credentials were refused: ``username`` as sent, ``request``. Never the password.
sign_in_failed = Signal()
