from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/", include("provisioning.api.urls")),
    path("api/", include("bookings.api.urls")),
    path("api/", include("images.api.urls")),
    path("api/", include("provisioning.applications.api.urls")),
    path("api/", include("provisioning.orders.api.urls")),
    path("applications/", include("provisioning.applications.urls")),
    path("orders/", include("provisioning.orders.urls")),
    path("", include("images.urls")),
    path("bookings/", include("bookings.urls")),
    path("", include("provisioning.web_urls")),
]
