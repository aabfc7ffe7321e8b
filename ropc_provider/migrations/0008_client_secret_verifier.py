from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ropc_provider', '0007_grace_retry'),
    ]

    operations = [
        migrations.AddField(
            model_name='clientpolicy',
            name='client_secret_verifier',
            field=models.CharField(blank=True, editable=False, max_length=255),
        ),
    ]
