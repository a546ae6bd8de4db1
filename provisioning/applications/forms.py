from django import forms

from provisioning.applications import conf, selectors
from provisioning.applications.choices import Provider, ResourceKind
from provisioning.applications.models import NAME_PATTERN, ApplicationRequest
from provisioning.models import Customer
from provisioning.providers.buckets import get_bucket_adapter
from provisioning.validators import single_line


class RequestForm(forms.Form):
    """A team's request for application resources (`application_request_create`)."""

    application = forms.RegexField(
        NAME_PATTERN,
        max_length=40,
        label="Application",
        help_text="lowercase letters, digits and hyphens; it names the resources",
        validators=[single_line],
        error_messages={
            "invalid": "Use lowercase letters, digits and hyphens only (a letter or digit first)."
        },
    )
    team = forms.ChoiceField(label="Team", help_text="the team the resources are for; you must be one of it")
    provider = forms.ChoiceField(choices=Provider.choices, label="Provider", initial=Provider.AWS)
    resources = forms.MultipleChoiceField(
        choices=ResourceKind.choices,
        initial=[ResourceKind.BUCKET],
        widget=forms.CheckboxSelectMultiple,
        label="Resources",
    )
    index_html = forms.CharField(
        required=False,
        max_length=100_000,
        label="Index page (HTML)",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="the bucket's index page; empty: a page that names the application and the team",
    )
    authorizer = forms.ChoiceField(
        label="Authorizer", help_text="who approves (choosing region and profile) or rejects the request"
    )
    time_limit_seconds = forms.IntegerField(
        label="Time limit for the decision (seconds)",
        help_text="how long the authorizer has; then the request times out and nothing is created",
    )

    def __init__(self, *args, requester, customers: list[Customer], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        several = len(customers) > 1
        if several:
            self.fields = {
                "customer": forms.ModelChoiceField(
                    queryset=Customer.objects.filter(pk__in=[c.pk for c in customers]), label="Customer"
                ),
                **self.fields,
            }
        teams = selectors.teams_visible_to(requester).filter(customer__in=customers)
        self.fields["team"].choices = [("", "—")] + [
            (t.name, f"{t.name} ({t.customer})" if several else t.name) for t in teams
        ]
        self.fields["authorizer"].choices = [("", "—")] + [
            (u.username, f"{u.get_full_name()} ({u.username})" if u.get_full_name() else u.username)
            for u in selectors.authorizer_candidates(customers, requester)
        ]
        low, high = conf.decision_timeout_bounds()
        limit = self.fields["time_limit_seconds"]
        limit.initial = conf.decision_timeout()
        limit.widget.attrs.update(min=low, max=high)  # the service checks the bounds

    def request_data(self) -> dict:
        """What `application_request_create` takes, from the cleaned form."""
        data = self.cleaned_data
        resources = {kind: {} for kind in data["resources"]}
        if "bucket" in resources and data["index_html"]:
            resources["bucket"]["index_html"] = data["index_html"]
        return {
            "application": data["application"],
            "team": data["team"],
            "provider": data["provider"],
            "authorizer": data["authorizer"],
            "requested_resources": resources,
            "time_limit_seconds": data["time_limit_seconds"],
        }


class DecisionForm(forms.Form):
    """Approve with a region and a profile, or reject with a comment: the page's two buttons send
    `approved`."""

    approved = forms.TypedChoiceField(
        choices=[("true", "Approve"), ("false", "Reject")],
        coerce=lambda value: value == "true",
        widget=forms.HiddenInput,
        label="Decision",
        error_messages={"required": "Press Approve or Reject."},
    )
    region = forms.ChoiceField(
        required=False, label="Region", help_text="where the resources are created (when approving)"
    )
    profile = forms.ChoiceField(
        required=False, label="Profile", help_text="the profile they are created with (when approving)"
    )
    comment = forms.CharField(
        required=False,
        max_length=2000,
        label="Comment",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="why, for the team (when rejecting)",
    )

    def __init__(self, *args, request: ApplicationRequest, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [("", "—")] + [
            (r, r) for r in get_bucket_adapter(request.provider).regions()
        ]
        self.fields["profile"].choices = [("", "—")] + [(p, p) for p in conf.profiles()]
