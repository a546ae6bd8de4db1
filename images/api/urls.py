from rest_framework.routers import DefaultRouter

from images.api.views import CloudAccountViewSet, ImageBuildViewSet, PublicKeyViewSet, ReservationViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("image-builds", ImageBuildViewSet, basename="image-build")
router.register("reservations", ReservationViewSet, basename="reservation")
router.register("pubkeys", PublicKeyViewSet, basename="pubkey")
router.register("cloud-accounts", CloudAccountViewSet, basename="cloud-account")
urlpatterns = router.urls
