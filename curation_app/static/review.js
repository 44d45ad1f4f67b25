// The console's own script (no build step; a static file because the CSP forbids inline code).
// Review page: verdicts per card, per-position alternates with a duplicate guard, catalog
// search, a draft kept per task, a timer of the time actually spent, the lease heartbeat and
// keyboard shortcuts. Flow: submit, skip, give back and undo post in the background and the
// next page replaces this one without a full reload.
(function () {
  "use strict";

  var DEBOUNCE_MS = 200;
  var MIN_CHARS = 2;
  var IDLE_MS = 90000; // no key, click or scroll for this long: the curator stepped away
  var DRAFT_PREFIX = "hitl-draft:";
  var DRAFT_MAX_AGE_MS = 86400000;
  var DETAILS_KEY = "hitl-model-details";

  var page = null; // the live page's state; replaced on every in-place navigation
  var lastInput = Date.now();

  ["keydown", "pointerdown", "scroll", "input"].forEach(function (name) {
    document.addEventListener(name, function () {
      lastInput = Date.now();
    }, { passive: true, capture: true });
  });

  function $(root, selector) {
    return root.querySelector(selector);
  }

  function all(root, selector) {
    return Array.prototype.slice.call(root.querySelectorAll(selector));
  }

  function part(card, role) {
    return card.querySelector('[data-role="' + role + '"]');
  }

  function storage() {
    try {
      return window.localStorage;
    } catch (error) {
      return null; // storage disabled: drafts are simply not kept
    }
  }

  function csrf() {
    var input = document.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }

  // --- Messages ----------------------------------------------------------------------------
  function flash(text, category) {
    var box = document.getElementById("flow-messages");
    if (!box || !text) {
      return;
    }
    var note = document.createElement("p");
    note.className = "flash flash-" + (category || "info");
    note.setAttribute("role", "status");
    note.textContent = text;
    box.prepend(note);
  }

  function showError(text, position) {
    var box = document.getElementById("form-error");
    if (!box) {
      flash(text, "error");
      return;
    }
    box.textContent = "Not saved: " + text;
    box.hidden = false;
    if (page && position) {
      var card = page.cards[position - 1];
      if (card) {
        card.classList.add("has-error");
        page.focusCard(position - 1);
      }
    }
  }

  // --- In-place navigation -----------------------------------------------------------------
  function swapPage(html, url, message, category) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var main = document.querySelector("main");
    var next = doc.querySelector("main");
    if (!main || !next) {
      window.location.assign(url);
      return;
    }
    if (page) {
      page.stop();
    }
    main.className = next.className;
    main.replaceChildren.apply(main, Array.prototype.slice.call(next.childNodes));
    document.title = doc.title;
    if (window.location.pathname + window.location.search !== url) {
      window.history.pushState({ flow: true }, "", url);
    }
    var box = document.getElementById("flow-messages");
    if (!box && message) {
      box = document.createElement("div");
      box.id = "flow-messages";
      main.prepend(box);
    }
    flash(message, category);
    start();
    window.scrollTo(0, 0);
  }

  function go(url, message, category) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.text().then(function (html) {
          swapPage(html, response.url.replace(window.location.origin, "") || url, message, category);
        });
      })
      .catch(function () {
        window.location.assign(url);
      });
  }

  // A refused undo concerns the task submitted before, not the one on screen: it says why
  // and closes the offer, and the current task's lease and form stay as they were.
  function refuseUndo(text) {
    var bar = document.getElementById("undo-bar");
    if (bar) {
      bar.hidden = true;
      bar.setAttribute("data-closed", "true");
    }
    flash(text || "the server refused the undo", "error");
  }

  function isUndo(form) {
    return form.id === "undo-bar";
  }

  function postFlow(form, before) {
    var busy = form.closest("#review-form") || form;
    busy.setAttribute("aria-busy", "true");
    var body = new FormData(form);
    if (before) {
      before(body);
    }
    return fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf() },
      body: body,
    })
      .then(function (response) {
        return response.json().then(function (answer) {
          return { ok: response.ok, status: response.status, answer: answer };
        });
      })
      .then(function (result) {
        if (!result.ok) {
          busy.removeAttribute("aria-busy");
          if (isUndo(form)) {
            refuseUndo(result.answer.error);
            return false;
          }
          // Only the current task's own actions (submit, skip, give back) hold its lease.
          if (result.status === 409 && page) {
            page.loseLease();
          }
          showError(result.answer.error || "the server refused the request", result.answer.position);
          return false;
        }
        return go(result.answer.next_url, result.answer.message, result.answer.category).then(
          function () {
            return true;
          }
        );
      })
      .catch(function () {
        busy.removeAttribute("aria-busy");
        showError("the network failed; your choices are still here, try again");
        return false;
      });
  }

  window.addEventListener("pagehide", function () {
    if (page) {
      page.save();
    }
  });

  window.addEventListener("popstate", function () {
    go(window.location.pathname + window.location.search);
  });

  // --- The review page ---------------------------------------------------------------------
  function ReviewPage(form) {
    var self = this;
    var root = document.getElementById("task-root");
    var taskId = root ? root.getAttribute("data-task-id") : "";
    var onSlate = (form.getAttribute("data-slate-items") || "").split(" ").filter(Boolean);
    var searchUrl = form.getAttribute("data-search-url");
    var eventId = form.getAttribute("data-event-id") || "";
    var timers = [];
    var leaseLost = false;
    var current = 0;
    var active = 0;
    var store = storage();
    var draftKey = DRAFT_PREFIX + taskId;

    self.cards = all(form, "fieldset.position");

    function position(card) {
      return Number(card.getAttribute("data-position"));
    }

    function verdictOf(card) {
      var checked = card.querySelector('[data-role="verdict"]:checked');
      return checked ? checked.value : "keep";
    }

    function setVerdict(card, value) {
      all(card, '[data-role="verdict"]').forEach(function (radio) {
        radio.checked = radio.value === value;
      });
      if (value !== "swap") {
        clearSwap(card); // no stale "Swap in:" once the curator keeps or removes
      }
      card.classList.toggle("swapping", value === "swap");
      saveDraft();
    }

    function swapTarget(card) {
      var chosen = part(card, "chosen").value;
      if (chosen) {
        return chosen;
      }
      var alternate = card.querySelector('[data-role="alternate"]:checked');
      return alternate ? alternate.value : "";
    }

    function clearSwap(card) {
      part(card, "chosen").value = "";
      part(card, "chosen").removeAttribute("data-title");
      all(card, '[data-role="alternate"]').forEach(function (radio) {
        radio.checked = false;
      });
      part(card, "chosen-title").textContent = "";
      part(card, "chosen-label").hidden = true;
    }

    function takenBy(card, itemId) {
      var where = [];
      self.cards.forEach(function (other) {
        if (other !== card && verdictOf(other) === "swap" && swapTarget(other) === itemId) {
          where.push(position(other) + 1);
        }
      });
      return where;
    }

    function warn(text) {
      var box = form.querySelector('[data-role="duplicate-warning"]');
      box.textContent = text;
      box.hidden = !text;
    }

    // Swap `card` for itemId (from an alternate tile or a search result), unless it is taken.
    function chooseSwap(card, itemId, title, fromSearch) {
      var taken = takenBy(card, itemId);
      if (taken.length) {
        warn(
          "“" + title + "” is already swapped in at position " + taken.join(", ") +
            "; pick a different item for position " + (position(card) + 1) + "."
        );
        return false;
      }
      warn("");
      all(card, '[data-role="alternate"]').forEach(function (radio) {
        radio.checked = !fromSearch && radio.value === itemId;
      });
      part(card, "chosen").value = fromSearch ? itemId : "";
      part(card, "chosen").setAttribute("data-title", fromSearch ? title : "");
      part(card, "chosen-title").textContent = title;
      part(card, "chosen-label").hidden = false;
      all(card, '[data-role="verdict"]').forEach(function (radio) {
        radio.checked = radio.value === "swap";
      });
      card.classList.add("swapping");
      card.classList.remove("has-error");
      saveDraft();
      return true;
    }

    function duplicates() {
      var seen = {};
      var clash = "";
      self.cards.forEach(function (card) {
        var target = verdictOf(card) === "swap" ? swapTarget(card) : "";
        if (!target) {
          return;
        }
        if (seen[target] !== undefined && !clash) {
          clash = "Positions " + (seen[target] + 1) + " and " + (position(card) + 1) +
            " would swap in the same item; pick a different one for each.";
        }
        seen[target] = position(card);
      });
      return clash;
    }

    // --- Drafts: the curator's unsaved choices survive a reload --------------------------
    function snapshot() {
      var cards = {};
      self.cards.forEach(function (card) {
        var alternate = card.querySelector('[data-role="alternate"]:checked');
        cards[position(card)] = {
          verdict: verdictOf(card),
          alternate: alternate ? alternate.value : "",
          chosen: part(card, "chosen").value,
          chosenTitle: part(card, "chosen").getAttribute("data-title") || "",
          reason: card.querySelector('input[name^="reason-"]').value,
        };
      });
      return cards;
    }

    function changed(cards) {
      return Object.keys(cards).some(function (key) {
        var c = cards[key];
        return c.verdict !== "keep" || c.alternate || c.chosen || c.reason;
      });
    }

    function saveDraft() {
      if (!store || !taskId) {
        return;
      }
      try {
        store.setItem(draftKey, JSON.stringify({ cards: snapshot(), active: active, saved: Date.now() }));
      } catch (error) {
        // Storage full: the draft is a convenience, the review still works.
      }
    }

    function restoreDraft() {
      var text = store && taskId ? store.getItem(draftKey) : null;
      if (!text) {
        return;
      }
      var draft;
      try {
        draft = JSON.parse(text);
      } catch (error) {
        store.removeItem(draftKey);
        return;
      }
      if (!draft || Date.now() - (draft.saved || 0) > DRAFT_MAX_AGE_MS) {
        store.removeItem(draftKey);
        return;
      }
      active = Number(draft.active) || 0;
      if (!draft.cards || !changed(draft.cards)) {
        return;
      }
      self.cards.forEach(function (card) {
        var saved = draft.cards[position(card)];
        if (!saved) {
          return;
        }
        all(card, '[data-role="verdict"]').forEach(function (radio) {
          radio.checked = radio.value === saved.verdict;
        });
        card.querySelector('input[name^="reason-"]').value = saved.reason || "";
        if (saved.verdict === "swap" && saved.chosen) {
          chooseSwap(card, saved.chosen, saved.chosenTitle || saved.chosen, true);
        } else if (saved.verdict === "swap" && saved.alternate) {
          var tile = card.querySelector('[data-role="alternate-option"][data-item-id="' + CSS.escape(saved.alternate) + '"]');
          if (tile) {
            chooseSwap(card, saved.alternate, tile.getAttribute("title") || saved.alternate, false);
          }
        }
        card.classList.toggle("swapping", saved.verdict === "swap");
      });
      var note = document.getElementById("draft-restored");
      if (note) {
        note.hidden = false;
      }
    }

    self.dropDraft = function () {
      if (store && taskId) {
        store.removeItem(draftKey);
      }
    };

    // --- Timer: only the time the page is visible and in use ------------------------------
    function showTimer() {
      var box = document.getElementById("timer");
      if (box) {
        var seconds = Math.floor(active);
        box.textContent = Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
      }
    }

    // Time is added in fractions of a second: a quick keyboard review still counts.
    var lastTick = Date.now();
    function countTime() {
      var now = Date.now();
      if (document.visibilityState === "visible" && now - lastInput < IDLE_MS) {
        active += (now - lastTick) / 1000;
      }
      lastTick = now;
    }

    timers.push(
      window.setInterval(function () {
        countTime();
        showTimer();
        if (store && store.getItem(draftKey)) {
          saveDraft(); // a draft exists: keep its time current, so a reload resumes the timer
        }
      }, 1000)
    );

    // --- Search ------------------------------------------------------------------------------
    function resultButton(card, item) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "result";
      button.setAttribute("data-item-id", item.item_id);
      var img = document.createElement("img");
      img.src = item.picture;
      img.alt = item.title;
      img.loading = "lazy";
      img.width = 36;
      img.height = 43;
      var text = document.createElement("span");
      var title = document.createElement("span");
      title.className = "result-title";
      title.textContent = item.title;
      var meta = document.createElement("span");
      meta.className = "result-meta";
      var bits = [item.brand, item.color, item.category];
      if (item.price !== null && item.price !== undefined) {
        bits.push(Number(item.price).toFixed(2) + (item.within_budget === false ? " (over budget)" : ""));
      }
      meta.textContent = bits.filter(Boolean).join(" · ");
      text.append(title, meta);
      button.append(img, text);
      if (onSlate.indexOf(item.item_id) !== -1) {
        button.disabled = true;
        meta.textContent += " · already on the slate";
      }
      button.addEventListener("click", function () {
        if (chooseSwap(card, item.item_id, item.title, true)) {
          part(card, "results").hidden = true;
          button.blur();
        }
      });
      li.appendChild(button);
      return li;
    }

    function wireSearch(card) {
      var input = part(card, "search");
      var sameCategory = part(card, "same-category");
      var list = part(card, "results");
      var timer = null;
      var controller = null;
      var pageNumber = 1;

      function message(text) {
        list.replaceChildren();
        var li = document.createElement("li");
        li.className = "note";
        li.textContent = text;
        list.appendChild(li);
        list.hidden = false;
      }

      function run(more) {
        var query = input.value.trim();
        if (controller) {
          controller.abort();
        }
        if (query.length < MIN_CHARS) {
          list.replaceChildren();
          list.hidden = true;
          return;
        }
        pageNumber = more ? pageNumber + 1 : 1;
        var params = new URLSearchParams({ q: query, event: eventId, page: String(pageNumber) });
        if (sameCategory && sameCategory.checked) {
          params.set("category", sameCategory.value);
        }
        controller = new AbortController();
        fetch(searchUrl + "?" + params.toString(), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
          signal: controller.signal,
        })
          .then(function (response) {
            if (!response.ok) {
              throw new Error("search failed");
            }
            return response.json();
          })
          .then(function (body) {
            var items = body.items || [];
            var old = list.querySelector(".more");
            if (old) {
              old.remove();
            }
            if (!more) {
              list.replaceChildren();
            }
            if (!items.length && !more) {
              message("No matching items in stock.");
              return;
            }
            items.forEach(function (item) {
              list.appendChild(resultButton(card, item));
            });
            if (body.has_more) {
              var li = document.createElement("li");
              li.className = "more";
              var button = document.createElement("button");
              button.type = "button";
              button.className = "link";
              button.textContent = "More results";
              button.addEventListener("click", function () {
                run(true);
              });
              li.appendChild(button);
              list.appendChild(li);
            }
            list.hidden = false;
          })
          .catch(function (error) {
            if (error.name !== "AbortError") {
              message("Search failed; try again.");
            }
          });
      }

      function schedule() {
        window.clearTimeout(timer);
        timer = window.setTimeout(function () {
          run(false);
        }, DEBOUNCE_MS);
      }

      input.addEventListener("input", schedule);
      if (sameCategory) {
        sameCategory.addEventListener("change", schedule);
      }
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") {
          event.preventDefault(); // Enter searches now instead of submitting the review
          window.clearTimeout(timer);
          run(false);
        }
      });
    }

    // --- Wiring the cards --------------------------------------------------------------------
    self.cards.forEach(function (card, index) {
      card.classList.toggle("swapping", verdictOf(card) === "swap");
      all(card, '[data-role="verdict"]').forEach(function (radio) {
        radio.addEventListener("change", function () {
          setVerdict(card, radio.value);
          radio.blur(); // shortcuts keep working right after a mouse click
        });
      });
      all(card, '[data-role="alternate-option"]').forEach(function (tile) {
        var radio = tile.querySelector('[data-role="alternate"]');
        tile.addEventListener("click", function (event) {
          event.preventDefault();
          chooseSwap(card, radio.value, tile.getAttribute("title") || radio.value, false);
          radio.blur();
        });
      });
      part(card, "clear").addEventListener("click", function () {
        clearSwap(card);
        saveDraft();
      });
      card.querySelector('input[name^="reason-"]').addEventListener("input", saveDraft);
      card.addEventListener("click", function () {
        self.focusCard(index, true);
      });
      wireSearch(card);
    });

    self.focusCard = function (index, noScroll) {
      if (!self.cards.length) {
        return;
      }
      current = (index + self.cards.length) % self.cards.length;
      self.cards.forEach(function (card, i) {
        card.classList.toggle("current", i === current);
      });
      if (!noScroll) {
        self.cards[current].scrollIntoView({ block: "nearest", inline: "nearest" });
      }
    };

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (leaseLost) {
        return;
      }
      var clash = duplicates();
      if (clash) {
        warn(clash);
        return;
      }
      postFlow(form, function (body) {
        countTime();
        body.set("active_seconds", String(active));
      }).then(function (moved) {
        if (moved) {
          self.dropDraft();
        }
      });
    });

    // --- Lease heartbeat ---------------------------------------------------------------------
    var leaseToken = form.querySelector('input[name="lease_token"]').value;
    var heartbeatUrl = form.getAttribute("data-heartbeat-url");
    var heartbeatMs = Number(form.getAttribute("data-heartbeat-ms")) || 60000;

    self.loseLease = function () {
      leaseLost = true;
      var box = document.getElementById("lease-lost");
      if (box) {
        box.hidden = false;
      }
      document.getElementById("submit-review").disabled = true;
    };

    timers.push(
      window.setInterval(function () {
        if (leaseLost) {
          return;
        }
        fetch(heartbeatUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
          body: JSON.stringify({ lease_token: leaseToken }),
        })
          .then(function (response) {
            if (response.status === 409 || response.status === 404) {
              self.loseLease();
              return null;
            }
            return response.ok ? response.json() : null;
          })
          .then(function (body) {
            var ends = document.getElementById("lease-ends");
            if (body && body.leased_until && ends) {
              ends.textContent = body.leased_until.slice(11, 19);
            }
          })
          .catch(function () {
            // A network blip: the next beat retries well before the lease runs out.
          });
      }, heartbeatMs)
    );

    // --- Keyboard ----------------------------------------------------------------------------
    self.key = function (event) {
      var card = self.cards[current];
      var key = event.key;
      if (key === "j" || key === "ArrowRight") {
        self.focusCard(current + 1);
      } else if (key === "k" || key === "ArrowLeft") {
        self.focusCard(current - 1);
      } else if (key === "c") {
        setVerdict(card, "keep");
        self.focusCard(current + 1);
      } else if (key === "x") {
        setVerdict(card, "remove");
        self.focusCard(current + 1);
      } else if (key === "s") {
        setVerdict(card, "swap");
        part(card, "search").focus();
      } else if (/^[1-9]$/.test(key)) {
        var tile = card.querySelectorAll('[data-role="alternate-option"]')[Number(key) - 1];
        if (tile) {
          setVerdict(card, "swap");
          chooseSwap(card, tile.getAttribute("data-item-id"), tile.getAttribute("title"), false);
        }
      } else if (key === "n") {
        form.requestSubmit();
      } else {
        return false;
      }
      return true;
    };

    self.save = saveDraft;

    self.stop = function () {
      timers.forEach(window.clearInterval);
      saveDraft();
    };

    restoreDraft();
    showTimer();
    var discard = document.getElementById("draft-discard");
    if (discard) {
      discard.addEventListener("click", function () {
        self.dropDraft();
        go(window.location.pathname);
      });
    }
  }

  // --- Page-wide pieces: flow forms, undo countdown, model details, shortcuts ------------
  function wireFlowForms() {
    all(document, "form[data-flow]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var leaving = page; // the page being left; `page` is the next one once it has loaded
        postFlow(form).then(function (moved) {
          if (moved && leaving && form.action.indexOf("/undo") === -1) {
            leaving.dropDraft();
          }
        });
      });
    });
  }

  function wireUndo() {
    var bar = document.getElementById("undo-bar");
    if (!bar) {
      return null;
    }
    var until = Date.parse(bar.getAttribute("data-until"));
    var left = bar.querySelector('[data-role="undo-left"]');
    function tick() {
      var seconds = Math.round((until - Date.now()) / 1000);
      if (bar.getAttribute("data-closed")) {
        return false;
      }
      if (seconds <= 0) {
        bar.hidden = true;
        return false;
      }
      left.textContent = "(until the learner learns it, at most " + seconds + " s)";
      return true;
    }
    tick();
    var timer = window.setInterval(function () {
      if (!tick()) {
        window.clearInterval(timer);
      }
    }, 1000);
    return timer;
  }

  function wireDetails() {
    var button = document.getElementById("toggle-details");
    if (!button) {
      return;
    }
    var store = storage();
    function apply(open) {
      button.setAttribute("aria-pressed", open ? "true" : "false");
      all(document, "details.model-details").forEach(function (details) {
        details.open = open;
      });
    }
    apply(store ? store.getItem(DETAILS_KEY) === "1" : false);
    button.addEventListener("click", function () {
      var open = button.getAttribute("aria-pressed") !== "true";
      if (store) {
        store.setItem(DETAILS_KEY, open ? "1" : "0");
      }
      apply(open);
    });
  }

  function typing(target) {
    var tag = target.tagName;
    if (tag === "TEXTAREA") {
      return true;
    }
    return tag === "INPUT" && ["text", "search", "password", "number"].indexOf(target.type) !== -1;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || !page) {
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") {
        event.target.blur();
      }
      return;
    }
    if (event.target.tagName === "SELECT") {
      event.target.blur(); // a picked dropdown must not swallow the shortcuts
    }
    if (page.key(event)) {
      event.preventDefault();
    }
  });

  var undoTimer = null;

  function start() {
    if (undoTimer) {
      window.clearInterval(undoTimer);
    }
    var form = document.getElementById("review-form");
    page = form ? new ReviewPage(form) : null;
    wireFlowForms();
    undoTimer = wireUndo();
    wireDetails();
  }

  start();
})();
