from rest_framework.routers import DefaultRouter

from provisioning.applications.api.views import ApplicationRequestViewSet, TeamViewSet

router = DefaultRouter()
router.register("application-requests", ApplicationRequestViewSet, basename="application-request")
router.register("application-teams", TeamViewSet, basename="application-team")
urlpatterns = router.urls
