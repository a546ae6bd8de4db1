from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "provisioning.orders"
    label = "orders"
    verbose_name = "Environment orders"

    def ready(self) -> None:
        # The worker must know the order workflows by kind.
        from provisioning.orders import sagas  # noqa: F401
