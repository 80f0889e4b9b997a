from django.shortcuts import render

from cvsa_ml.health import system_health


def home(request):
    return render(request, "home.html", {"health": system_health()})
