from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The worker must know the build→launch sagas by kind, and stop local instances on shutdown.
        from images import sagas, tasks  # noqa: F401
