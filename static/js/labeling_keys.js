// The labeling queues' keys (templates/labeling/partials/label_actions.html): 1 yes, 0 no,
// s skip, u undo, ? this list. Physical keys (event.code), so Shift and Caps Lock change
// nothing ("!" is still Digit1); never while typing in a field or with Ctrl/Alt/Cmd held.
(function () {
  "use strict";
  const ACTIONS = {
    Digit1: "yes", Numpad1: "yes",
    Digit0: "no", Numpad0: "no",
    KeyS: "skip",
    KeyU: "undo",
  };

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
    if (event.key === "?" || (event.code === "Slash" && event.shiftKey)) {
      event.preventDefault();
      toggleHelp();
      return;
    }
    if (event.key === "Escape") {
      toggleHelp(false);
      return;
    }
    const action = ACTIONS[event.code];
    const button = action && document.querySelector('#label-actions [data-action="' + action + '"]');
    if (button) {
      event.preventDefault();
      button.click();
    }
  });
})();
