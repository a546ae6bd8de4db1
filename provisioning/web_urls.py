from django.contrib.auth import views as auth_views
from django.urls import path

from provisioning import health, metrics, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("health/", health.health, name="health"),
    path("operations/<uuid:pk>/", views.operation, name="operation"),
    path("metrics", metrics.metrics, name="metrics"),
    path("", views.home, name="home"),
]
