from rest_framework.routers import DefaultRouter

from bookings.api.views import BookingItemViewSet, HostingAssetViewSet, ProjectViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("projects", ProjectViewSet, basename="project")
router.register("booking-items", BookingItemViewSet, basename="booking-item")
router.register("hosting-assets", HostingAssetViewSet, basename="hosting-asset")
urlpatterns = router.urls
