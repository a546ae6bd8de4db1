from django.apps import AppConfig


class ApplicationsConfig(AppConfig):
    name = "provisioning.applications"
    label = "applications"
