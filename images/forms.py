"""The forms of the "Build and launch" wizard: one per step (image, target, launch). They check only
what a form can (required fields, choices); the build manifest and the launch details are checked by
`images.manifest`, whose errors `images.wizard` puts back next to the fields they concern."""

from __future__ import annotations

import re

from django import forms

from images import selectors
from images.choices import ProviderName
from images.manifest import ARCHITECTURES, DISTRIBUTIONS, MAX_INSTANCES
from provisioning.models import Customer
from provisioning.providers import provider_class
from provisioning.validators import single_line

_SEPARATORS = re.compile(r"[\s,]+")


def words(text: str) -> list[str]:
    """Names given one per line, or separated by spaces or commas."""
    return [w for w in _SEPARATORS.split(text or "") if w]


class ImageForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        label="Image name",
        help_text="how you will recognise the image",
        validators=[single_line],
    )
    distribution = forms.ChoiceField(choices=[(d, d) for d in DISTRIBUTIONS], label="Distribution")
    architecture = forms.ChoiceField(
        choices=[(a, a) for a in ARCHITECTURES], initial="x86_64", label="Architecture"
    )
    packages = forms.CharField(
        required=False,
        label="Packages",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="package names, separated by spaces, commas or new lines",
    )
    services_enabled = forms.CharField(
        required=False, label="Services to enable", help_text="service names, separated by spaces or commas"
    )
    services_disabled = forms.CharField(
        required=False, label="Services to disable", help_text="service names, separated by spaces or commas"
    )

    def __init__(self, *args, customers, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if len(customers) > 1:  # whom the image is for, when the user acts for several customers
            self.fields = {
                "customer": forms.ModelChoiceField(
                    queryset=Customer.objects.filter(pk__in=[c.pk for c in customers]), label="Customer"
                ),
                **self.fields,
            }


class UserForm(forms.Form):
    """A user the image creates (a row of a formset: a row left empty is dropped)."""

    name = forms.CharField(max_length=32, label="User name", required=False, validators=[single_line])
    ssh_key = forms.CharField(
        required=False,
        label="SSH public key",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="the user's public key (ssh-ed25519 ..., ssh-rsa ...)",
    )
    groups = forms.CharField(required=False, label="Groups", help_text="separated by spaces or commas")

    def clean(self) -> dict:
        data = super().clean()
        if (data.get("ssh_key") or data.get("groups")) and not data.get("name"):
            self.add_error("name", "Name the user (or empty the whole row).")
        return data


class FileForm(forms.Form):
    """A file the image contains (a row of a formset: a row left empty is dropped)."""

    path = forms.CharField(max_length=255, required=False, label="Path", help_text="absolute, e.g. /etc/motd")
    mode = forms.CharField(max_length=4, required=False, initial="0644", label="Mode")
    content = forms.CharField(required=False, label="Content", widget=forms.Textarea(attrs={"rows": 3}))

    def clean(self) -> dict:
        data = super().clean()
        if data.get("content") and not data.get("path"):
            self.add_error("path", "Give the file's path (or empty the whole row).")
        return data


UserFormSet = forms.formset_factory(UserForm, extra=1, max_num=50)
FileFormSet = forms.formset_factory(FileForm, extra=1, max_num=50)


class TargetForm(forms.Form):
    provider = forms.ChoiceField(
        choices=ProviderName.choices, widget=forms.RadioSelect, label="Provider", initial=ProviderName.LOCAL
    )
    # The provider the regions and accounts below were shown for: another one chosen shows its own.
    shown_provider = forms.CharField(widget=forms.HiddenInput, required=False)
    regions = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, label="Regions", help_text="the image is built in each"
    )
    account = forms.ModelChoiceField(
        queryset=None,
        required=False,
        label="Cloud account",
        empty_label="— none (the service's own) —",
        help_text="your account at the provider that the instances are launched into",
    )

    def __init__(self, *args, user, customer: Customer, provider: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.provider = provider
        self.provider_title = ProviderName(provider).label
        self.fields["shown_provider"].initial = provider
        self.fields["regions"].choices = [(r, r) for r in provider_class(provider)(None).regions()]
        self.fields["account"].queryset = selectors.cloud_accounts_visible_to(user, provider).filter(
            customer=customer
        )
        if provider == ProviderName.AWS:  # the service launches into aws only with an account
            self.fields["account"].required = True
            self.fields["account"].empty_label = None
            self.fields["account"].error_messages["required"] = (
                "Choose one of your aws accounts (register one with POST /api/cloud-accounts/)."
            )

    def provider_changed(self) -> bool:
        """Whether another provider was chosen than the one whose regions and accounts were shown
        (or the button to show them was pressed)."""
        shown = self.data.get("shown_provider")
        return "refresh" in self.data or bool(shown) and shown != self.data.get("provider")


class LaunchForm(forms.Form):
    instance_type = forms.ChoiceField(label="Instance type")
    amount = forms.IntegerField(
        min_value=1,
        max_value=MAX_INSTANCES,
        initial=1,
        label="Number of instances",
        help_text="spread over the regions",
    )
    pubkey = forms.ModelChoiceField(
        queryset=None,
        required=False,
        label="Public key",
        empty_label="— paste a new key below —",
        help_text="one of your keys, put on every instance",
    )
    public_key = forms.CharField(
        required=False,
        label="New public key",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="paste an SSH public key (never a private one); it is kept among your keys",
    )
    one_off_image = forms.BooleanField(required=False, label="Delete the image again if the launch fails")

    def __init__(self, *args, user, customer: Customer, provider: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cls = provider_class(provider)
        self.fields["instance_type"].choices = [(t, t) for t in cls.instance_types]
        self.fields["instance_type"].initial = cls.default_instance_type
        self.fields["pubkey"].queryset = selectors.public_keys_visible_to(user).filter(customer=customer)

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("pubkey") and not (data.get("public_key") or "").strip():
            self.add_error("pubkey", "Pick one of your keys or paste a new public key.")
        return data
