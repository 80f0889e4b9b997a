// The labeling queues' keys (templates/labeling/partials/label_actions.html): each labeler's
// own (the page's #labeling-keys: action → KeyboardEvent.code, labeling.labeler_keys), by
// default 1 yes, 0 no, m unsure, s skip, u undo, ← previous, ? this list. Physical keys
// (event.code), so Shift and Caps Lock change nothing ("!" is still Digit1), and the number
// pad's digits count as the same digits; never while typing in a field or with Ctrl/Alt/Cmd.
(function () {
  "use strict";
  const DEFAULT_KEYS = { yes: "Digit1", no: "Digit0", unsure: "KeyM", skip: "KeyS", undo: "KeyU", previous: "ArrowLeft", help: "Slash" };

  function configuredKeys() {
    const element = document.getElementById("labeling-keys");
    let keys = {};
    try {
      keys = element ? JSON.parse(element.textContent) : {};
    } catch (error) {
      keys = {};
    }
    const byCode = {};
    for (const [action, code] of Object.entries(Object.assign({}, DEFAULT_KEYS, keys))) byCode[code] = action;
    return byCode;
  }

  function physicalCode(event) {
    const numpad = /^Numpad([0-9])$/.exec(event.code);
    return numpad ? "Digit" + numpad[1] : event.code;
  }

  function isTyping(target) {
    return Boolean(target && target.closest && target.closest("input, select, textarea, [contenteditable]"));
  }

  function toggleHelp(show) {
    const help = document.getElementById("label-keys-help");
    if (help) help.hidden = show === undefined ? !help.hidden : !show;
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-keys-help-toggle]")) toggleHelp();
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || isTyping(event.target)) return;
    if (event.key === "Escape") {
      toggleHelp(false);
      return;
    }
    const action = configuredKeys()[physicalCode(event)];
    if (action === "help" || (!action && event.key === "?")) {
      event.preventDefault();
      toggleHelp();
      return;
    }
    const button = action && document.querySelector('#label-actions [data-action="' + action + '"]');
    if (button) {
      event.preventDefault();
      button.click();
    }
  });
})();
