"""The pages of application requests; include it at "applications/" (the link in the authorizer's
email is /applications/requests/<id>/decision/)."""

from django.urls import path

from provisioning.applications import views

app_name = "applications"
urlpatterns = [
    path("requests/", views.request_list, name="requests"),
    path("requests/new/", views.request_new, name="request_new"),
    path("requests/<uuid:pk>/", views.request_detail, name="request"),
    path("requests/<uuid:pk>/live/", views.request_live, name="request_live"),
    path("requests/<uuid:pk>/decision/", views.decision, name="decision"),
]
