"""``{% card_keys user as keys %}``: the labeler's keys for the card's action bar. A tag,
not view context, because every queue that includes the bar (the labeling page, the
model-assisted one in ``training``) shows the same keys without each view loading them."""

from django import template

from labeling.labeler_keys import key_name, labeler_key_list, labeler_keys

register = template.Library()


@register.simple_tag
def card_keys(user) -> dict:
    """{"codes": action → code (for the page's script), "names": action → what the button
    shows, "list": the ``?`` list}. One query."""
    codes = labeler_keys(user)
    return {"codes": codes, "names": {action: key_name(code) for action, code in codes.items()},
            "list": labeler_key_list(codes)}
