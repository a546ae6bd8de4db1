from django.db import migrations, models


class Migration(migrations.Migration):
    """Adds `operator_managed` (false): an account stored before, that names a profile or a role and no
    keys of its own, keeps its data but no longer acts through the worker's credentials until a
    hostmaster marks it operator-managed in the admin."""

    dependencies = [("images", "0002_uids")]

    operations = [
        migrations.AddField(
            model_name="cloudaccount",
            name="operator_managed",
            field=models.BooleanField(
                default=False,
                help_text="a hostmaster vouches for it: it may use a profile or a role without keys of its own",
            ),
        ),
        migrations.AlterField(
            model_name="cloudaccount",
            name="profile",
            field=models.CharField(
                blank=True,
                help_text="a profile of the service's machine (operator-managed accounts only)",
                max_length=64,
            ),
        ),
    ]
