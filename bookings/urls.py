"""The bookings pages; mounted at "bookings/"."""

from django.urls import path

from bookings import views

app_name = "bookings"
urlpatterns = [
    path("new/", views.wizard_start, name="new"),
    path("new/<slug:step>/", views.wizard, name="wizard"),
    path("items/<int:pk>/", views.item, name="item"),
    path("items/<int:pk>/status/", views.item_status, name="item_status"),
    path("items/<int:pk>/record-added/", views.record_added, name="record_added"),
]
