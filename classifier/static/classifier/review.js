/* The review page's keyboard and one-click flow (progressive enhancement, no dependencies).

   Without this file every button is an ordinary form POST. With it, the same forms are sent
   with fetch (the server answers JSON), the card shows what was saved, and focus moves on to
   the next undecided card at once, so a person can keep typing 1/2/3/A without waiting.
   Keys act on the focused card: 1-3 choose, A accepts the top prediction, N opens the
   category tree, J/K (or the arrow keys) move, S skips. */
(function () {
  "use strict";

  var grid = document.querySelector(".review-grid");
  if (!grid) { return; }
  var cards = Array.prototype.slice.call(grid.querySelectorAll(".review-card"));
  var decidedCount = 0;

  function text(selector, value) {
    var el = document.querySelector(selector);
    if (el) { el.textContent = String(value); }
  }

  function currentCard() {
    var active = document.activeElement;
    var card = active && active.closest ? active.closest(".review-card") : null;
    return card || cards.find(function (c) { return !c.classList.contains("decided"); }) || null;
  }

  function focusCard(card) {
    if (!card) { return; }
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest", behavior: "auto" });
  }

  function neighbour(card, step) {
    var i = cards.indexOf(card);
    return cards[Math.max(0, Math.min(cards.length - 1, i + step))] || null;
  }

  function nextUndecided(card) {
    var i = cards.indexOf(card);
    var order = cards.slice(i + 1).concat(cards.slice(0, i));
    return order.find(function (c) {
      return !c.classList.contains("decided") && !c.classList.contains("pending");
    }) || null;
  }

  function moveOn(card) {
    var next = nextUndecided(card);
    if (next) { focusCard(next); return; }
    var done = document.querySelector(".review-done");
    if (done && cards.every(function (c) { return c.classList.contains("decided") || c.classList.contains("pending"); })) {
      done.hidden = false;
      done.querySelector("a").focus();  // Enter loads the next products
    }
  }

  function showOutcome(card, message, ok) {
    card.classList.remove("pending");
    card.classList.toggle("decided", ok);
    card.classList.toggle("failed", !ok);
    card.querySelector(".review-outcome").textContent = message;
  }

  function markChosen(card, button) {
    card.querySelectorAll(".review-choice").forEach(function (b) {
      b.setAttribute("aria-pressed", b === button ? "true" : "false");
    });
  }

  function send(form, submitter) {
    var card = form.closest(".review-card");
    var data = new FormData(form);
    if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
    var wasDecided = card.classList.contains("decided");
    card.classList.add("pending");
    card.querySelector(".review-outcome").textContent = "Saving…";
    // "Accept" is the top prediction: the same button as key 1 lights up.
    var chosen = submitter && submitter.classList.contains("review-accept")
      ? card.querySelector('.review-choice[data-key="1"]') : submitter;
    markChosen(card, chosen && chosen.classList.contains("review-choice") ? chosen : null);
    var picker = card.querySelector(".review-picker");
    if (picker) { picker.open = false; }
    moveOn(card);
    fetch(form.action, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.json().catch(function () {
        return { ok: false, message: "The server answered " + response.status + ". Reload the page and try again." };
      });
    }).then(function (body) {
      if (body.ok) {
        showOutcome(card, "✓ " + body.category.name + " saved", true);
        if (!wasDecided) { decidedCount += 1; }
        text("[data-session-count]", decidedCount);
        text("[data-remaining-count]", body.remaining);
        text("[data-labels-count]", body.labels_since_model);
        text("[data-retrain-note]", body.retrain_note);
      } else {
        showOutcome(card, body.message, false);
      }
    }).catch(function () {
      showOutcome(card, "Not saved: the server cannot be reached. Try again.", false);
    });
  }

  grid.addEventListener("submit", function (event) {
    event.preventDefault();
    send(event.target, event.submitter);
  });

  function press(card, key) {
    var button = card.querySelector('[data-key="' + key + '"]');
    if (button) { send(button.form, button); }
  }

  function openPicker(card) {
    var picker = card.querySelector(".review-picker");
    if (!picker) { return; }
    picker.open = true;
    picker.querySelector("select").focus();
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target;
    if (target.matches("select") && event.key === "Enter") {
      event.preventDefault();
      send(target.form, null);
      return;
    }
    if (target.matches("input, select, textarea")) {
      if (event.key === "Escape") {
        var open = target.closest(".review-picker");
        if (open) { open.open = false; focusCard(open.closest(".review-card")); }
      }
      return;
    }
    var card = currentCard();
    if (!card) { return; }
    var key = event.key.toLowerCase();
    var handled = true;
    if (key === "1" || key === "2" || key === "3" || key === "a") { press(card, key); }
    else if (key === "n" || key === "0") { openPicker(card); }
    else if (key === "j" || key === "arrowright") { focusCard(neighbour(card, 1)); }
    else if (key === "k" || key === "arrowleft") { focusCard(neighbour(card, -1)); }
    else if (key === "s") { moveOn(card); }
    else { handled = false; }
    if (handled) { event.preventDefault(); }
  });

  // Start where the hand is: the card named in the address (after a no-JS round trip), else
  // the first one.
  var start = (location.hash && document.querySelector(location.hash + ".review-card")) || cards[0];
  focusCard(start);
})();
