from django import forms


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What the token is for.")
    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        label="Expires in (days)",
        help_text="Empty: the token does not expire.",
    )
