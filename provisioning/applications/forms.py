from django import forms

from provisioning.applications import conf
from provisioning.applications.models import ApplicationRequest
from provisioning.providers.buckets import get_bucket_adapter


class DecisionForm(forms.Form):
    approved = forms.TypedChoiceField(
        choices=[("true", "Approve"), ("false", "Reject")],
        coerce=lambda value: value == "true",
        widget=forms.RadioSelect,
        label="Decision",
    )
    region = forms.ChoiceField(required=False, help_text="where the resources are created (when approving)")
    profile = forms.ChoiceField(
        required=False, help_text="the profile they are created with (when approving)"
    )
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, request: ApplicationRequest, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [("", "—")] + [
            (r, r) for r in get_bucket_adapter(request.provider).regions()
        ]
        self.fields["profile"].choices = [("", "—")] + [(p, p) for p in conf.profiles()]
