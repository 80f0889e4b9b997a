"""The cleaning page's form: a rule and the parameters of every rule (each rule's
fields are named ``<rule>-<param>``; only the chosen rule's are read). The rule's own
checks are the service's (``cleaning_rules.rule_params_clean``); its errors land on the
matching field."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from datasets.cleaning_rules import RULES, ParamSpec


def _field_name(rule: str, param: str) -> str:
    return f"{rule}-{param}"


def _form_field(param: ParamSpec) -> forms.Field:
    field = _typed_form_field(param)
    # The field's name carries the rule as a prefix; people read the parameter's name.
    field.label = param.name.replace("_", " ").capitalize()
    return field


def _typed_form_field(param: ParamSpec) -> forms.Field:
    if param.kind == "int":
        return forms.IntegerField(required=False, initial=param.default, help_text=param.help,
                                  min_value=param.minimum, max_value=param.maximum)
    if param.kind == "float":
        return forms.FloatField(required=False, initial=param.default, help_text=param.help,
                                min_value=param.minimum, max_value=param.maximum)
    if param.kind == "choices":
        return forms.MultipleChoiceField(required=False, initial=list(param.default), help_text=param.help,
                                         choices=[(choice, choice) for choice in param.choices],
                                         widget=forms.CheckboxSelectMultiple)
    if param.kind == "words":
        return forms.CharField(required=False, initial="\n".join(param.default), help_text=param.help,
                               widget=forms.Textarea(attrs={"rows": 3}))
    return forms.CharField(required=False, help_text=param.help, max_length=2000,
                           widget=forms.TextInput(attrs={"placeholder": 'length(title) < 4 and duration < 30',
                                                         "style": "width:100%"}))


class CleaningRuleForm(forms.Form):
    rule = forms.ChoiceField(choices=[(key, spec.label) for key, spec in RULES.items()])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, spec in RULES.items():
            for param in spec.params:
                self.fields[_field_name(key, param.name)] = _form_field(param)

    def rule_fieldsets(self) -> list[dict]:
        return [
            {"key": key, "spec": spec, "fields": [self[_field_name(key, param.name)] for param in spec.params]}
            for key, spec in RULES.items()
        ]

    def rule_and_params(self) -> tuple[str, dict]:
        rule = self.cleaned_data["rule"]
        params = {}
        for param in RULES[rule].params:
            value = self.cleaned_data.get(_field_name(rule, param.name))
            if value not in (None, "", []):
                params[param.name] = value
        return rule, params

    def errors_from_service(self, error: ValidationError) -> None:
        rule = self.cleaned_data.get("rule", "")
        for key, messages in getattr(error, "message_dict", {"__all__": error.messages}).items():
            name = _field_name(rule, key.removeprefix("params.")) if key.startswith("params.") else None
            self.add_error(name if name in self.fields else None, " ".join(messages))
