from django.db import migrations
from oauth2_provider.settings import oauth2_settings

from ropc_provider.migrations._secrets import move_verifiers_to_policies


class Migration(migrations.Migration):

    dependencies = [
        ('ropc_provider', '0008_client_secret_verifier'),
        migrations.swappable_dependency(oauth2_settings.APPLICATION_MODEL),
    ]

    operations = [
        # No way back: the verifier in DOT's field was the flaw this fixes.
        migrations.RunPython(move_verifiers_to_policies, migrations.RunPython.noop),
    ]
