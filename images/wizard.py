"""The "Build and launch" wizard: image → target → launch → review.

What each step's form received is kept in the session as posted, so every page works without
JavaScript and a step shown again shows what was entered. Whether a step is complete is worked out
again on every request from what is stored: its forms are valid and the checks of `images.manifest`
(the same the service runs) find nothing wrong with the fields it owns. Each error of those checks is
named by the path of its field (`manifest.customizations.users[0].ssh_key`, `launch.amount`); `place`
turns the path into the step, the form and the field it is shown next to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict

from images.choices import ProviderName
from images.forms import FileFormSet, ImageForm, LaunchForm, TargetForm, UserFormSet, words
from images.manifest import validate_launch, validate_manifest
from provisioning.selectors import customers_of

STEPS = ("image", "target", "launch", "review")
TITLES = {
    "image": "Image",
    "target": "Target",
    "launch": "Launch",
    "review": "Review",
}
FORM_STEPS = STEPS[:-1]
SESSION_KEY = "images.build_launch"
_NOT_DATA = {"csrfmiddlewaretoken", "add_user", "add_file", "refresh", "next"}

Errors = dict[str, list[str]]


@dataclass(frozen=True)
class Place:
    """Where an error is shown: the step, the part of its page (`form`, or the `users` / `files`
    rows), the row, and the field (None: above the part's fields)."""

    step: str
    part: str = "form"
    field: str | None = None
    row: int | None = None


_FIELDS = [
    ("name", Place("image", field="name")),
    ("customer", Place("image", field="customer")),
    ("manifest.distribution", Place("image", field="distribution")),
    ("manifest.architecture", Place("image", field="architecture")),
    ("manifest.packages", Place("image", field="packages")),
    ("manifest.customizations.services.enabled", Place("image", field="services_enabled")),
    ("manifest.customizations.services.disabled", Place("image", field="services_disabled")),
    ("manifest.customizations.services", Place("image", field="services_enabled")),
    ("manifest.customizations.users", Place("image", part="users")),
    ("manifest.customizations.files", Place("image", part="files")),
    ("manifest.customizations", Place("image")),
    ("manifest.target.provider", Place("target", field="provider")),
    ("manifest.target.regions", Place("target", field="regions")),
    ("manifest.target", Place("target")),
    ("manifest", Place("image")),
    ("launch.account", Place("target", field="account")),
    ("launch.amount", Place("launch", field="amount")),
    ("launch.instance_type", Place("launch", field="instance_type")),
    ("launch.pubkey", Place("launch", field="pubkey")),
    ("launch.public_key", Place("launch", field="public_key")),
    ("launch.one_off_image", Place("launch", field="one_off_image")),
    ("launch", Place("launch")),
]
_ROW = re.compile(r"manifest\.customizations\.(users|files)\[(\d+)\](?:\.([a-z_]+))?")


def place(path: str) -> Place:
    """The place of the field an error path names; paths nothing owns go to the review page."""
    row = _ROW.match(path)
    if row:
        return Place("image", part=row[1], row=int(row[2]), field=row[3])
    for prefix, where in _FIELDS:
        if path == prefix or path.startswith((prefix + ".", prefix + "[")):
            return where
    return Place("review")


@dataclass
class StepForms:
    """The forms of one step, bound or not, and the errors of the checks placed on them."""

    step: str
    form: Any
    users: Any = None
    files: Any = None
    part_errors: dict[str, list[str]] = field(default_factory=dict)

    def is_valid(self) -> bool:
        parts = [self.form, self.users, self.files]
        return all([p.is_valid() for p in parts if p is not None]) and not self.part_errors

    def rows(self, part: str) -> list[int]:
        """The formset rows that count (a row left empty is dropped), in manifest order."""
        formset = getattr(self, part)
        key = "name" if part == "users" else "path"
        return [i for i, f in enumerate(formset.forms) if (f.cleaned_data or {}).get(key)]

    def place_errors(self, errors: Errors) -> None:
        for path, messages in errors.items():
            where = place(path)
            if where.step != self.step:
                continue
            if where.part == "form":
                target = where.field if where.field in self.form.fields else None
                self.form.add_error(target, messages)
                continue
            formset = getattr(self, where.part)
            rows = self.rows(where.part)
            if where.row is None or where.row >= len(rows):
                self.part_errors.setdefault(where.part, []).extend(messages)
                continue
            form = formset.forms[rows[where.row]]
            form.add_error(where.field if where.field in form.fields else None, messages)


class Wizard:
    """The wizard's state in the session of one user."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.user = request.user
        self.customers = list(customers_of(request.user))
        self.data: dict[str, dict[str, list[str]]] = request.session.get(SESSION_KEY, {})

    # --- storage ---------------------------------------------------------------------------------

    def store(self, step: str, post: MultiValueDict) -> None:
        self.data[step] = {k: v for k, v in post.lists() if k not in _NOT_DATA}
        self.request.session[SESSION_KEY] = self.data

    def clear(self) -> None:
        self.request.session.pop(SESSION_KEY, None)
        self.data = {}

    def stored(self, step: str) -> MultiValueDict | None:
        return MultiValueDict(self.data[step]) if step in self.data else None

    # --- what the steps depend on ----------------------------------------------------------------

    @property
    def customer(self):
        if len(self.customers) == 1:
            return self.customers[0]
        chosen = (self.data.get("image", {}).get("customer") or [""])[0]
        return next((c for c in self.customers if str(c.pk) == chosen), None)

    def provider(self, post: MultiValueDict | None = None) -> str:
        source = post if post is not None else self.stored("target") or MultiValueDict()
        chosen = source.get("provider")
        return chosen if chosen in ProviderName.values else ProviderName.LOCAL

    def forms(self, step: str, data: MultiValueDict | None = None) -> StepForms:
        """The step's forms, bound to `data` (or unbound when None)."""
        if step == "image":
            return StepForms(
                step,
                ImageForm(data, customers=self.customers),
                users=UserFormSet(data, prefix="users"),
                files=FileFormSet(data, prefix="files"),
            )
        if step == "target":
            return StepForms(step, self.target_form(data, provider=self.provider(data)))
        return StepForms(
            step, LaunchForm(data, provider=self.provider(), user=self.user, customer=self.customer)
        )

    def target_form(self, data: MultiValueDict | None = None, *, provider: str) -> TargetForm:
        return TargetForm(
            data, initial={"provider": provider}, provider=provider, user=self.user, customer=self.customer
        )

    def bound(self, step: str, overlay: tuple[str, MultiValueDict] | None = None) -> StepForms | None:
        """The step's forms bound to what is stored (or to `overlay` for its step), with the errors of
        the checks placed on them; None when nothing was stored for it."""
        data = overlay[1] if overlay and overlay[0] == step else self.stored(step)
        if data is None:
            return None
        forms = self.forms(step, data)
        if all(f.is_valid() for f in [forms.form, forms.users, forms.files] if f is not None):
            forms.place_errors(self.check(overlay))
        return forms

    def first_incomplete(self, overlay: tuple[str, MultiValueDict] | None = None) -> str:
        for step in FORM_STEPS:
            forms = self.bound(step, overlay)
            if forms is None or not forms.is_valid():
                return step
        return "review"

    # --- what the service receives ---------------------------------------------------------------

    def _cleaned(self, step: str, overlay: tuple[str, MultiValueDict] | None) -> StepForms | None:
        data = overlay[1] if overlay and overlay[0] == step else self.stored(step)
        if data is None:
            return None
        forms = self.forms(step, data)
        parts = [forms.form, forms.users, forms.files]
        return forms if all(p.is_valid() for p in parts if p is not None) else None

    def request_data(self, overlay: tuple[str, MultiValueDict] | None = None) -> dict[str, Any]:
        """`name`, `manifest` and `launch` as `image_build_launch` takes them, from the steps whose
        forms are valid (a step not done yet leaves its part out)."""
        image = self._cleaned("image", overlay)
        target = self._cleaned("target", overlay)
        launch = self._cleaned("launch", overlay)
        manifest: dict[str, Any] = {}
        name = ""
        if image is not None:
            data = image.form.cleaned_data
            name = data["name"]
            users = [image.users.forms[i].cleaned_data for i in image.rows("users")]
            files = [image.files.forms[i].cleaned_data for i in image.rows("files")]
            manifest = {
                "distribution": data["distribution"],
                "architecture": data["architecture"],
                "packages": words(data["packages"]),
                "customizations": {
                    "users": [
                        {"name": u["name"], "ssh_key": u["ssh_key"], "groups": words(u["groups"])}
                        for u in users
                    ],
                    "files": [
                        {"path": f["path"], "content": f["content"], "mode": f["mode"] or "0644"}
                        for f in files
                    ],
                    "services": {
                        "enabled": words(data["services_enabled"]),
                        "disabled": words(data["services_disabled"]),
                    },
                },
            }
        details: dict[str, Any] = {}
        if target is not None:
            data = target.form.cleaned_data
            manifest["target"] = {"provider": data["provider"], "regions": data["regions"]}
            details["account"] = data["account"].pk if data["account"] else None
        if launch is not None:
            data = launch.form.cleaned_data
            details.update(
                amount=data["amount"],
                instance_type=data["instance_type"],
                one_off_image=data["one_off_image"],
            )
            if data["pubkey"]:
                details["pubkey"] = data["pubkey"].pk
            if (data["public_key"] or "").strip():
                details["public_key"] = data["public_key"].strip()
        return {"name": name, "manifest": manifest, "launch": details}

    def check(self, overlay: tuple[str, MultiValueDict] | None = None) -> Errors:
        """The errors the service's checks find in what the steps hold so far."""
        wanted = self.request_data(overlay)
        _, errors = validate_manifest(wanted["manifest"])
        target = wanted["manifest"].get("target")
        if target and "amount" in wanted["launch"]:
            regions = target["regions"] if not any(p.startswith("manifest.target") for p in errors) else []
            _, launch_errors = validate_launch(wanted["launch"], provider=target["provider"], regions=regions)
            errors.update(launch_errors)
        return errors

    def navigation(self, current: str) -> list[dict[str, Any]]:
        reachable = STEPS[: STEPS.index(self.first_incomplete()) + 1]
        return [
            {
                "step": step,
                "number": i + 1,
                "title": TITLES[step],
                "current": step == current,
                "reachable": step in reachable,
            }
            for i, step in enumerate(STEPS)
        ]
