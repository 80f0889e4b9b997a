"""Each labeler's keys: validated, stored, rendered into the card's page."""

import json
import re

import pytest
from django.core.exceptions import ValidationError

from labeling import labeler_keys
from labeling.models import LabelerPreferences

pytestmark = pytest.mark.django_db


def test_defaults_are_the_cards_keys(user):
    assert labeler_keys.labeler_keys(user) == {
        "yes": "Digit1", "no": "Digit0", "unsure": "KeyM", "skip": "KeyS", "undo": "KeyU",
        "previous": "ArrowLeft", "help": "Slash"}


@pytest.mark.parametrize(("keys", "message"), [
    ({"yes": "KeyS"}, "already the key for skip"),
    ({"yes": "Escape"}, "reserved"),
    ({"no": "Numpad2"}, "use Digit2"),
    ({"no": "j"}, "not a key code"),
    ({"jump": "KeyJ"}, "unknown action"),
])
def test_bad_keys_are_refused_with_a_clear_message(user, keys, message):
    with pytest.raises(ValidationError, match=message):
        labeler_keys.labeler_keys_set(user=user, keys=keys)
    assert not LabelerPreferences.objects.exists()


def test_keys_page_saves_only_changes_and_the_card_uses_them(logged_in_client, user, make_videos):
    make_videos(2)
    keys = dict(labeler_keys.DEFAULT_KEYS, yes="KeyJ", no="KeyF")

    response = logged_in_client.post("/labeling/keys/", keys, follow=True)

    assert "Saved your keys." in response.content.decode()
    assert LabelerPreferences.objects.get(user=user).keys == {"yes": "KeyJ", "no": "KeyF"}
    page = logged_in_client.get("/labeling/").content.decode()
    rendered = json.loads(re.search(r'<script id="labeling-keys" type="application/json">(.*?)</script>', page).group(1))
    assert rendered["yes"] == "KeyJ" and rendered["skip"] == "KeyS"
    assert "Yes <kbd>j</kbd>" in page


def test_keys_page_shows_duplicates_and_saves_nothing(logged_in_client, user):
    keys = dict(labeler_keys.DEFAULT_KEYS, unsure="KeyS")

    response = logged_in_client.post("/labeling/keys/", keys)

    assert response.status_code == 200
    assert "KeyS (s) is already the key for" in response.content.decode()
    assert not LabelerPreferences.objects.exists()
