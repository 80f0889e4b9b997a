// The labeling page's instant answers (templates/labeling/label.html, labeling.views): the
// page holds the next cards already rendered (#label-prefetch, <template>s). Yes, no,
// unsure and skip swap the first one in at once and post the answer in the background;
// the response brings the cards that top the buffer up (with the progress counter and
// messages, out of band). Answers are sent one after another, in order.
// Never loses an answer: a refused or failed post puts the answered card back (and the
// swapped-in one back into the buffer) and shows why (#htmx-error). A card the server
// wants to show instead (the "you labeled this no — change to yes?" question) replaces
// the swapped-in one. Undo and ← are sent the same way and swap in the card they bring.
(function () {
  "use strict";
  const MAX_DETAIL = 200;
  let chain = Promise.resolve();

  function bar() {
    return document.querySelector("#label-actions[data-prefetch]");
  }

  function card() {
    return document.getElementById("label-card");
  }

  function buffer() {
    return document.getElementById("label-prefetch");
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function showError(text) {
    const banner = document.getElementById("htmx-error");
    if (!banner) return;
    banner.querySelector("[data-text]").textContent = text;
    banner.hidden = false;
  }

  function hideError() {
    const banner = document.getElementById("htmx-error");
    if (banner) banner.hidden = true;
  }

  function explain(status) {
    if (status === 403) return "your session expired or the page is stale — reload the page";
    if (status === 404) return "not found (deleted meanwhile?) — reload the page";
    if (status === 409) return "someone changed this meanwhile — reload the page";
    if (status >= 500) return "the server failed — try again, or tell an admin if it keeps failing";
    return "the request was refused";
  }

  async function refusal(response) {
    const type = response.headers.get("Content-Type") || "";
    const body = type.startsWith("text/plain") ? (await response.text()).trim().slice(0, MAX_DETAIL) : "";
    return "Request failed (" + response.status + "): " + explain(response.status) + (body ? " · " + body : "") +
      " — your answer was not saved; the card is back.";
  }

  function show(fragmentOwner) {
    // fragmentOwner: a <template> (a prefetched card). The swap is synchronous.
    const current = card();
    const next = fragmentOwner.content.firstElementChild.cloneNode(true);
    current.replaceWith(next);
    if (window.htmx) window.htmx.process(next);
    return current;
  }

  function heldIds(shownVideoId) {
    const ids = shownVideoId ? [shownVideoId] : [];
    buffer().querySelectorAll("template[data-video-id]").forEach(function (template) {
      ids.push(template.dataset.videoId);
    });
    return ids;
  }

  function cardFields(element) {
    const data = new FormData();
    element.querySelectorAll("input[name]").forEach(function (input) {
      data.append(input.name, input.value);
    });
    return data;
  }

  function post(url, data) {
    return fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "HX-Request": "true", "HX-Current-URL": window.location.href, "X-CSRFToken": csrfToken() },
    });
  }

  function swapCard(html) {
    // A card response: the card, with the progress, messages and a fresh buffer out of band.
    window.htmx.swap(card(), html, { swapStyle: "outerHTML" });
  }

  function appendToBuffer(html) {
    const holder = document.createElement("template");
    holder.innerHTML = html;
    // New video cards go before an "empty queue" card already held; a second one is dropped.
    holder.content.querySelectorAll("template").forEach(function (template) {
      const empty = buffer().querySelector("template[data-empty]");
      if (!template.hasAttribute("data-empty")) buffer().insertBefore(template, empty);
      else if (!empty) buffer().appendChild(template);
    });
    holder.content.querySelectorAll("[hx-swap-oob]").forEach(function (element) {
      const target = document.getElementById(element.id);
      if (target) {
        element.removeAttribute("hx-swap-oob");
        target.replaceWith(element);
      }
    });
  }

  async function answer(action, url, extra) {
    const answered = card();
    if (!answered || !answered.querySelector("input[name=video_id]")) return;
    const data = cardFields(answered);
    for (const [name, value] of Object.entries(extra || {})) data.append(name, value);
    const nextTemplate = buffer().querySelector("template");
    let shown = null;
    if (nextTemplate) {
      nextTemplate.remove();
      show(nextTemplate);
      shown = card();
    }
    data.append("holding", heldIds(shown && shown.dataset.videoId).join(","));
    function putBack() {
      if (shown) {
        buffer().insertBefore(nextTemplate, buffer().firstChild);
        card().replaceWith(answered);
      }
    }
    let response;
    try {
      response = await post(url, data);
    } catch (error) {
      putBack();
      showError("Could not reach the server — check the connection and try again. Your answer was not saved; the card is back.");
      return;
    }
    const redirect = response.headers.get("HX-Redirect");
    if (redirect) {
      window.location.href = redirect;
      return;
    }
    if (!response.ok) {
      putBack();
      showError(await refusal(response));
      return;
    }
    hideError();
    const html = await response.text();
    if (response.headers.get("X-Card-Outcome") !== "next") {
      // The server shows a card instead (e.g. asks to confirm a change): the swapped-in
      // card goes back to the buffer.
      putBack();
      swapCard(html);
      return;
    }
    appendToBuffer(html);
    if (!shown) {
      const first = buffer().querySelector("template");
      if (first) {
        first.remove();
        show(first);
      }
    }
  }

  async function cardRequest(url) {
    const current = card();
    let response;
    try {
      response = await post(url, current ? cardFields(current) : new FormData());
    } catch (error) {
      showError("Could not reach the server — check the connection and try again.");
      return;
    }
    const redirect = response.headers.get("HX-Redirect");
    if (redirect) {
      window.location.href = redirect;
      return;
    }
    if (!response.ok) {
      showError(await refusal(response));
      return;
    }
    hideError();
    swapCard(await response.text());
  }

  function enqueue(task) {
    chain = chain.then(task).catch(function (error) {
      showError("Something went wrong on this page (" + error + ") — reload the page.");
    });
  }

  function unsureBox() {
    return document.getElementById("label-unsure");
  }

  function openUnsure() {
    const box = unsureBox();
    if (!box || !card() || !card().querySelector("input[name=video_id]")) return;
    box.hidden = false;
    box.querySelector("input[name=comment]").focus();
  }

  function closeUnsure() {
    const box = unsureBox();
    if (!box) return;
    box.hidden = true;
    box.querySelector("input[name=comment]").value = "";
    if (document.activeElement) document.activeElement.blur();
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("#label-actions[data-prefetch] button[data-action]");
    if (button) {
      const action = button.dataset.action;
      if (action === "unsure") {
        openUnsure();
      } else if (button.hasAttribute("data-card-response")) {
        enqueue(function () { return cardRequest(button.dataset.url); });
      } else {
        const extra = button.dataset.value ? { value: button.dataset.value } : {};
        enqueue(function () { return answer(action, button.dataset.url, extra); });
      }
      return;
    }
    if (event.target.closest("[data-unsure-cancel]")) closeUnsure();
  });

  document.addEventListener("submit", function (event) {
    if (event.target.id !== "label-unsure") return;
    event.preventDefault();
    const comment = event.target.querySelector("input[name=comment]").value;
    const url = bar().querySelector('[data-action="unsure"]').dataset.url;
    closeUnsure();
    enqueue(function () { return answer("unsure", url, { comment: comment }); });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && unsureBox() && !unsureBox().hidden) closeUnsure();
  });
})();
