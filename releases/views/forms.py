"""Forms of the console pages. Validation messages are whole sentences."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User

from releases.models import Deployment, Environment, Project
from releases.validators import clean_ref, clean_version


class ReleaseForm(forms.Form):
    version = forms.CharField(
        max_length=100,
        help_text="The PEP 440 version the build must report, for example 1.4.0.",
        error_messages={"required": "Enter the version to release, for example 1.4.0."},
    )
    ref = forms.CharField(
        label="Git tag or ref",
        max_length=250,
        help_text="The tag, branch or commit to build, for example v1.4.0.",
        error_messages={"required": "Enter the git tag, branch or commit to build from, for example v1.4.0."},
    )

    def clean_version(self) -> str:
        return clean_version(self.cleaned_data["version"].strip())

    def clean_ref(self) -> str:
        return clean_ref(self.cleaned_data["ref"].strip())


class HistoryFilterForm(forms.Form):
    """The release history's filters; they live in the URL, so a view can be shared."""

    project = forms.ModelChoiceField(
        queryset=Project.objects.order_by("name"), required=False, to_field_name="name", empty_label="Any project"
    )
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.order_by("position", "name"),
        required=False,
        to_field_name="name",
        empty_label="Any environment",
    )
    # Where a deployment is, or how it ended: one list, as people think of it.
    status = forms.ChoiceField(
        choices=[
            ("", "Any status"),
            *[(value, label) for value, label in Deployment.State.choices if value != Deployment.State.FINISHED],
            *[(value, label) for value, label in Deployment.Outcome.choices if value],
        ],
        required=False,
    )
    requested_by = forms.CharField(label="Requested by", required=False, max_length=150)
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Requested on or after."
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Requested on or before."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # People know environments by the title on the buttons ("Test PyPI").
        environment = self.fields["environment"]
        assert isinstance(environment, forms.ModelChoiceField)
        environment.label_from_instance = lambda env: env.title  # type: ignore[method-assign,assignment]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date; swap them or widen the range.")
        return data

    def people(self) -> list[str]:
        return list(User.objects.order_by("username").values_list("username", flat=True)[:500])
