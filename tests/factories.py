import factory
from django.contrib.auth import get_user_model

# The package's own factories (built through our services), which host projects use too.
from ropc_provider.testing.factories import AccountFactory, ClientFactory, RealmFactory  # noqa: F401

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    is_active = True
    # Hashed before the first save, as createsuperuser does: creating a user is no password change.
    password = factory.django.Password(PASSWORD)
