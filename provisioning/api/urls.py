from rest_framework.routers import DefaultRouter

from provisioning.api.views import OperationViewSet

router = DefaultRouter()
router.register("operations", OperationViewSet, basename="operation")
urlpatterns = router.urls
