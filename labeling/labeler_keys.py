"""Each labeler's keys: which physical key (``KeyboardEvent.code``) does what on the card.
Stored in ``LabelerPreferences.keys`` (only what differs from the defaults is kept there);
static/js/labeling_keys.js reads the merged map from the page."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from labeling.models import LabelerPreferences

# action → (default code, what it does): the keys of the card before they were configurable
# (1 yes, 0 no, s skip, u undo, ? help), plus m unsure ("maybe") and ← previous.
ACTIONS: dict[str, tuple[str, str]] = {
    "yes": ("Digit1", "yes, an in-scope vocal-synth work"),
    "no": ("Digit0", "no"),
    "unsure": ("KeyM", "unsure (a comment box opens; Enter sends, Esc cancels)"),
    "skip": ("KeyS", "skip this video"),
    "undo": ("KeyU", "undo your last answer (the video comes back)"),
    "previous": ("ArrowLeft", "show your previous answer again, to change it"),
    "help": ("Slash", "show or hide this list (Esc hides it)"),
}
DEFAULT_KEYS = {action: code for action, (code, _) in ACTIONS.items()}

# Keys the page or the browser needs: Esc closes the list and the comment box, Enter sends
# a comment, Tab/Space/arrows (but ←) move focus and scroll, modifiers change nothing.
RESERVED_CODES = frozenset({
    "Escape", "Enter", "NumpadEnter", "Tab", "Space", "Backspace", "CapsLock",
    "ShiftLeft", "ShiftRight", "ControlLeft", "ControlRight", "AltLeft", "AltRight", "MetaLeft", "MetaRight",
    "ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End",
})
# What a key can be: letters, digits (the number pad's digits count as the same digit),
# punctuation, ← and →, F1–F12 is left to the browser.
_CODE = re.compile(
    r"^(Key[A-Z]|Digit[0-9]|ArrowLeft|ArrowRight|Slash|Period|Comma|Semicolon|Quote|BracketLeft|BracketRight"
    r"|Minus|Equal|Backquote|Backslash)$"
)
_KEY_NAMES = {
    "ArrowLeft": "←", "ArrowRight": "→", "Slash": "/", "Period": ".", "Comma": ",", "Semicolon": ";", "Quote": "'",
    "BracketLeft": "[", "BracketRight": "]", "Minus": "-", "Equal": "=", "Backquote": "`", "Backslash": "\\",
}


def key_name(code: str) -> str:
    """How a key is shown on a button: KeyS → s, Digit1 → 1, ArrowLeft → ←."""
    if code.startswith("Key"):
        return code[3:].lower()
    if code.startswith("Digit"):
        return code[5:]
    return _KEY_NAMES.get(code, code)


def _code_error(code: str) -> str | None:
    if code in RESERVED_CODES:
        return f"{code} is reserved (Esc, Enter, Tab, Space, modifiers and scrolling keys keep their usual meaning)"
    if code.startswith("Numpad") and code[6:].isdigit():
        return f"use Digit{code[6:]} instead of {code}: the number pad's digits count as the same keys"
    if not _CODE.match(code):
        return f"{code!r} is not a key code the card accepts: use a letter (KeyJ), a digit (Digit2), ← (ArrowLeft) or punctuation (Slash)"
    return None


def keys_validate(keys: dict) -> dict[str, str]:
    """The full action → code map for ``keys`` (missing actions take their default), or a
    ValidationError naming each bad action: unknown actions, codes that are not keys,
    reserved keys and a key given to two actions."""
    if not isinstance(keys, dict):
        raise ValidationError("keys must be an object of action → key code")
    errors: dict[str, str] = {}
    unknown = sorted(set(keys) - set(ACTIONS))
    if unknown:
        errors["__all__"] = f"unknown action(s): {', '.join(map(str, unknown))} (known: {', '.join(ACTIONS)})"
    merged = dict(DEFAULT_KEYS)
    for action in ACTIONS:
        if action not in keys:
            continue
        code = keys[action]
        if not isinstance(code, str) or not code.strip():
            errors[action] = "choose a key"
            continue
        code = code.strip()
        problem = _code_error(code)
        if problem:
            errors[action] = problem
        merged[action] = code
    by_code: dict[str, list[str]] = {}
    for action, code in merged.items():
        by_code.setdefault(code, []).append(action)
    for code, actions in by_code.items():
        if len(actions) > 1:
            for action in actions:
                if action in keys and action not in errors:
                    others = ", ".join(other for other in actions if other != action)
                    errors[action] = f"{code} ({key_name(code)}) is already the key for {others}"
    if errors:
        raise ValidationError(errors)
    return merged


@dataclass(frozen=True)
class LabelerKey:
    action: str
    code: str
    name: str
    meaning: str


def labeler_keys(user) -> dict[str, str]:
    """The user's action → code map (defaults where they set nothing): one query."""
    stored = (
        LabelerPreferences.objects.filter(user=user).values_list("keys", flat=True).first()
        if user.is_authenticated else None
    )
    merged = dict(DEFAULT_KEYS)
    if isinstance(stored, dict):
        merged.update({action: code for action, code in stored.items() if action in ACTIONS and isinstance(code, str)})
    return merged


def labeler_key_list(keys: dict[str, str]) -> list[LabelerKey]:
    """The map as the ``?`` list and the settings page show it, in the card's order."""
    return [LabelerKey(action, keys[action], key_name(keys[action]), meaning) for action, (_, meaning) in ACTIONS.items()]


def labeler_keys_set(*, user, keys: dict) -> LabelerPreferences:
    """Save the user's keys (validated: ``keys_validate``); only what differs from the
    defaults is stored, so a later change of a default reaches users who never chose."""
    merged = keys_validate(keys)
    changed = {action: code for action, code in merged.items() if code != DEFAULT_KEYS[action]}
    preferences, _ = LabelerPreferences.objects.update_or_create(user=user, defaults={"keys": changed})
    return preferences
