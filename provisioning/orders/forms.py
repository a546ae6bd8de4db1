"""The order wizard's form: an `order.yml` pasted or uploaded. Its content is checked by the order
spec itself (the same rules as the API and `process_order`), not here."""

from __future__ import annotations

from django import forms

from provisioning.orders.spec import MAX_BYTES


class OrderForm(forms.Form):
    text = forms.CharField(
        label="order.yml",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code"}),
        help_text="Paste the order here, or upload the file below.",
    )
    file = forms.FileField(label="Or upload the file", required=False)

    def order_text(self) -> str:
        upload = self.cleaned_data.get("file")
        if upload is not None:
            if upload.size > MAX_BYTES:
                raise forms.ValidationError(
                    f"the file is {upload.size} bytes; at most {MAX_BYTES} are accepted."
                )
            try:
                return upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError("the file must be UTF-8 text.") from None
        return self.cleaned_data.get("text") or ""
