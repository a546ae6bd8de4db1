from django.apps import AppConfig


class ApplicationsConfig(AppConfig):
    name = "provisioning.applications"
    label = "applications"
    verbose_name = "Application requests"

    def ready(self) -> None:
        # The worker must know the application-request saga by kind.
        from provisioning.applications import sagas  # noqa: F401
