"""The forms of the "book an item" wizard: type → resources → hosting asset → review.

Each step checks what it collected with `services.booking_item_errors` (the rules `booking_item_create`
applies) and shows every problem next to its field; nothing is stored before the last step.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms

from bookings import selectors
from bookings.choices import BookingItemType, HostingAssetType
from bookings.models import BookingItem, Project
from bookings.validation import Prop
from bookings.validation.resources import PARENTS, SCHEMAS
from provisioning.validators import single_line

# Resources the service fills in itself: never asked.
_GENERATED = {(BookingItemType.DOMAIN_SETUP, "verificationCode")}


def field_name(key: str) -> str:
    """A form field name (and HTML id) for a resources key such as "SLA-Platform"."""
    return re.sub(r"\W+", "_", key)


def add_errors(form: forms.Form, errors: dict[str, list[str]], prefix: str, keys: dict[str, str]) -> None:
    """Put service errors (`resources.CPU`) next to the form's fields; the rest above the form."""
    for key, messages in errors.items():
        if prefix and key != prefix and not key.startswith(prefix + "."):
            continue
        sub = key[len(prefix) + 1 :] if prefix else key
        field = keys.get(sub)
        for message in messages:
            if field:
                form.add_error(field, message)
            else:
                form.add_error(None, f"{sub}: {message}" if sub else message)


class WizardForm(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class TypeForm(WizardForm):
    """Step 1: what to book, in which project, under which parent item."""

    type = forms.ChoiceField(label="What to book", choices=BookingItemType.choices)
    caption = forms.CharField(
        label="Caption", max_length=80, help_text="how you will recognise it", validators=[single_line]
    )
    project = forms.ModelChoiceField(
        label="Project", queryset=Project.objects.none(), required=False, empty_label="(a new project)"
    )
    new_project = forms.CharField(
        label="New project",
        max_length=80,
        required=False,
        help_text="only when you start a new project",
        validators=[single_line],
    )
    parent_item = forms.ModelChoiceField(
        label="Parent item",
        queryset=BookingItem.objects.none(),
        required=False,
        empty_label="(none)",
        help_text="a webspace on your managed server, a server in your private cloud",
    )

    def __init__(self, *args: Any, user, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["project"].queryset = selectors.projects_visible_to(user)
        parent_types = {parent for parent, _required in PARENTS.values() if parent}
        self.fields["parent_item"].queryset = selectors.booking_items_visible_to(user).filter(
            type__in=parent_types
        )

    def clean(self) -> dict:
        data = super().clean()
        project, new_project = data.get("project"), (data.get("new_project") or "").strip()
        if project is None and not new_project and "project" not in self.errors:
            self.add_error("project", "Choose a project, or name a new one below.")
        if project is not None and new_project:
            self.add_error("new_project", "Either choose a project or name a new one, not both.")
        parent = data.get("parent_item")
        if parent is not None and project is not None and parent.project_id != project.pk:
            self.add_error("parent_item", "belongs to another project.")
        return data


class ResourcesForm(WizardForm):
    """Step 2: the resources of the chosen type, one field per resource."""

    def __init__(self, *args: Any, item_type: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.item_type = item_type
        self.keys: dict[str, str] = {}  # resources key → field name
        for prop in SCHEMAS[item_type].props:
            if (item_type, prop.name) in _GENERATED:
                continue
            self.keys[prop.name] = field_name(prop.name)
            self.fields[field_name(prop.name)] = self._field(prop)

    @staticmethod
    def _field(prop: Prop) -> forms.Field:
        label = prop.name if not prop.help or prop.kind is str else f"{prop.name} ({prop.help})"
        if prop.kind is bool:
            return forms.BooleanField(label=label, required=False)
        if prop.kind is int:
            return forms.IntegerField(
                label=label,
                required=prop.required,
                min_value=prop.minimum,
                max_value=prop.maximum,
                initial=prop.default,
            )
        if prop.choices:
            choices = [("", "(none)")] * (not prop.required) + [(c, c) for c in prop.choices]
            return forms.ChoiceField(label=label, choices=choices, required=prop.required)
        label = {"domainName": "Domain name"}.get(prop.name, prop.name)
        return forms.CharField(label=label, required=prop.required, max_length=prop.max_length)

    def resources(self) -> dict:
        """The cleaned values as the service takes them: unset and unticked ones left out."""
        result = {}
        for key, name in self.keys.items():
            value = self.cleaned_data.get(name)
            if value in (None, "", False):
                continue
            result[key] = value
        return result


class AssetForm(WizardForm):
    """Step 3: optionally, the hosting asset to create with the booking."""

    create = forms.BooleanField(label="Create the hosting asset now", required=False, initial=True)
    caption = forms.CharField(label="Asset caption", max_length=80, required=False, validators=[single_line])

    def __init__(self, *args: Any, item_type: str, user, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.item_type = item_type
        # The assets it may hang on are the project's customer's, whoever books.
        assets = selectors.hosting_assets_visible_to(user).filter(customer_id=project.customer_id)
        T = BookingItemType
        if item_type == T.MANAGED_WEBSPACE:
            self.fields["identifier"] = forms.CharField(
                label="Webspace name",
                required=False,
                help_text="3 letters or digits and 2 digits: abc00",
                validators=[single_line],
            )
            servers = assets.filter(type=HostingAssetType.MANAGED_SERVER).values_list("identifier", flat=True)
            self.fields["parent_asset"] = forms.ChoiceField(
                label="Managed server",
                required=False,
                choices=[("", "(let a hostmaster choose)")] + [(s, s) for s in servers],
            )
        elif item_type == T.DOMAIN_SETUP:
            webspaces = assets.filter(type=HostingAssetType.MANAGED_WEBSPACE).values_list(
                "identifier", flat=True
            )
            self.fields["webspace"] = forms.ChoiceField(
                label="Webspace serving the domain",
                required=False,
                choices=[("", "(choose)")] + [(w, w) for w in webspaces],
            )
            self.fields["unix_user"] = forms.CharField(
                label="Unix user",
                required=False,
                help_text="the webspace's main user when left empty",
                validators=[single_line],
            )
        elif item_type in (T.MANAGED_SERVER, T.CLOUD_SERVER):
            self.fields["identifier"] = forms.CharField(
                label="Server name",
                required=False,
                help_text="vm followed by 4 digits; a hostmaster may name it",
                validators=[single_line],
            )
        elif item_type == T.PRIVATE_CLOUD:
            self.fields["notes"] = forms.CharField(label="Notes", required=False, widget=forms.Textarea)
        self.keys = {name: name for name in self.fields if name != "create"}

    def clean(self) -> dict:
        data = super().clean()
        if data.get("create") and not any(data.get(key) for key in self.keys):
            self.add_error(None, 'Fill in the asset\'s fields, or untick "Create the hosting asset now".')
        return data

    def hosting_asset(self) -> dict | None:
        if not self.cleaned_data.get("create"):
            return None
        return {key: self.cleaned_data[key] for key in self.keys if self.cleaned_data.get(key)}
