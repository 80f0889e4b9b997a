from django.shortcuts import render

from core.roles import RoleFlags, user_role_names
from cvsa_ml.health import system_health
from labeling import agreement as labeling_agreement
from labeling import selectors as labeling_selectors


def home(request):
    """A labeler's home is their work: labeled today and this week, agreement with the
    consensus and with each other labeler, what is left in their queue (reviewers: the
    open conflicts and requests); admins also see the health of the infrastructure."""
    roles = RoleFlags(user_role_names(request.user))
    context = {"roles": roles}
    if roles.can_label:
        context["progress"] = labeling_selectors.labeling_progress(user=request.user)
        context["agreement"] = labeling_agreement.labeler_agreement(request.user.pk)
    if roles.can_review:
        context["review_counts"] = labeling_selectors.review_queue_counts()
    if roles.can_run_experiments or request.user.is_staff:
        context["health"] = system_health()
    return render(request, "cvsa_ml/home.html", context)
