"""The service's URLs with the decision page mounted where the authorizer's email links to it."""

from django.urls import include, path

from provisioning.urls import urlpatterns as service_urls

urlpatterns = [path("applications/", include("provisioning.applications.urls")), *service_urls]
