"""The benchmark's URLs: the test project's (our endpoints, DOT's stock ones under ``dot/``), and
djangorestframework-simplejwt's token views, plus one small API view per way of authenticating a
request, so each peer is timed doing the same work."""

from django.urls import path
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from ropc_provider.authentication import BearerAuthentication
from tests.urls import urlpatterns as test_urlpatterns


class Me(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"username": request.user.get_username()})


urlpatterns = [
    *test_urlpatterns,
    path("jwt/token/", TokenObtainPairView.as_view()),
    path("jwt/refresh/", TokenRefreshView.as_view()),
    path("bench/ours/", Me.as_view(authentication_classes=[BearerAuthentication])),
    path("bench/dot/", Me.as_view(authentication_classes=[OAuth2Authentication])),
    path("bench/jwt/", Me.as_view(authentication_classes=[JWTAuthentication])),
]
