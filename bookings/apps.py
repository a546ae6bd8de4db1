from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The worker must know the asset-creation sagas by kind.
        from bookings import sagas  # noqa: F401
