"""The pages of the images app. Include it at the site's root: the wizard lives under /images/ and a
reservation's status page at /reservations/<id>/ (the address the wizard lands on)."""

from django.urls import path

from images import views

app_name = "images"
urlpatterns = [
    path("images/", views.index, name="index"),
    path("images/build/", views.wizard_start, name="wizard_start"),
    path("images/build/reset/", views.wizard_reset, name="wizard_reset"),
    path("images/build/<slug:step>/", views.wizard_step, name="wizard"),
    path("reservations/<int:pk>/", views.reservation, name="reservation"),
    path("reservations/<int:pk>/live/", views.reservation_live, name="reservation_live"),
]
