"""Every environment and every order has an owner.

Environments made by `process_order` before it took `--customer` belonged to nobody, and any API
customer could update or delete them. They (and their orders) are given to the customer named below,
created when there is such an environment; a hostmaster moves them to their real owner from there.
Orders without a customer take their environment's. No row is lost."""

from django.db import migrations, models
import django.db.models.deletion

UNOWNED_CUSTOMER = "Unowned environments (from before owners)"


def give_owners(apps, schema_editor):
    Customer = apps.get_model("provisioning", "Customer")
    Environment = apps.get_model("orders", "Environment")
    Order = apps.get_model("orders", "Order")
    if Environment.objects.filter(customer__isnull=True).exists():
        holder, _ = Customer.objects.get_or_create(name=UNOWNED_CUSTOMER)
        Environment.objects.filter(customer__isnull=True).update(customer=holder)
    for environment in Environment.objects.filter(orders__customer__isnull=True).distinct():
        Order.objects.filter(environment=environment, customer__isnull=True).update(
            customer_id=environment.customer_id
        )


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("provisioning", "0003_ops_heartbeats_and_metrics_indexes"),
    ]

    operations = [
        migrations.RunPython(give_owners, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="environment",
            name="customer",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="environments",
                to="provisioning.customer",
                help_text="its owner",
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="customer",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to="provisioning.customer",
            ),
        ),
    ]
