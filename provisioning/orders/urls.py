"""The pages of environment orders; include it at "orders/"."""

from django.urls import path

from provisioning.orders import views

app_name = "orders"
urlpatterns = [
    path("new/", views.order_new, name="order_new"),
    path("<int:pk>/", views.order_detail, name="order"),
    path("<int:pk>/live/", views.order_live, name="order_live"),
    path("environments/<slug:key>/", views.environment_detail, name="environment"),
    path("environments/<slug:key>/delete/", views.environment_delete, name="environment_delete"),
]
