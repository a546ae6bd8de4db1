from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "provisioning.orders"
    label = "orders"
