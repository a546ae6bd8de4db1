"""The decision page; include it at "applications/" (its link in the authorizer's email is
/applications/requests/<id>/decision/)."""

from django.urls import path

from provisioning.applications import views

app_name = "applications"
urlpatterns = [
    path("requests/<uuid:pk>/decision/", views.decision, name="decision"),
]
