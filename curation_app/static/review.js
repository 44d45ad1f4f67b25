// Review page: catalog search as you type, picking a swap target per slate position, keyboard
// shortcuts, and a heartbeat that renews the task's lease while the page is open.
// Loaded as a static file because the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";

  var DEBOUNCE_MS = 200;
  var MIN_CHARS = 2;

  var form = document.getElementById("review-form");
  if (!form) {
    return;
  }
  var searchUrl = form.getAttribute("data-search-url");
  var onSlate = (form.getAttribute("data-slate-items") || "").split(" ").filter(Boolean);

  function part(fieldset, role) {
    return fieldset.querySelector('[data-role="' + role + '"]');
  }

  function setVerdict(fieldset, value) {
    var radios = fieldset.querySelectorAll('[data-role="verdict"]');
    radios.forEach(function (radio) {
      radio.checked = radio.value === value;
    });
  }

  function setChosen(fieldset, itemId, title) {
    part(fieldset, "chosen").value = itemId;
    part(fieldset, "chosen-title").textContent = title;
    part(fieldset, "chosen-label").hidden = !itemId;
  }

  function describe(item) {
    var bits = [item.category, item.style, item.color];
    if (item.price !== null && item.price !== undefined) {
      bits.push(Number(item.price).toFixed(2));
    }
    return bits.filter(Boolean).join(" · ");
  }

  function showMessage(list, text) {
    list.replaceChildren();
    var li = document.createElement("li");
    li.className = "note";
    li.textContent = text;
    list.appendChild(li);
    list.hidden = false;
  }

  function showResults(fieldset, items) {
    var list = part(fieldset, "results");
    if (items.length === 0) {
      showMessage(list, "No matching items in stock.");
      return;
    }
    list.replaceChildren();
    items.forEach(function (item) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "result";
      button.setAttribute("data-item-id", item.item_id);
      var title = document.createElement("span");
      title.className = "result-title";
      title.textContent = item.title;
      var meta = document.createElement("span");
      meta.className = "result-meta";
      meta.textContent = describe(item);
      button.append(title, meta);
      if (onSlate.indexOf(item.item_id) !== -1) {
        button.disabled = true;
        meta.textContent += " · already on the slate";
      }
      button.addEventListener("click", function () {
        setChosen(fieldset, item.item_id, item.title);
        part(fieldset, "alternate").value = "";
        setVerdict(fieldset, "swap");
        list.hidden = true;
      });
      li.appendChild(button);
      list.appendChild(li);
    });
    list.hidden = false;
  }

  function wireSearch(fieldset) {
    var input = part(fieldset, "search");
    var sameCategory = part(fieldset, "same-category");
    var list = part(fieldset, "results");
    var timer = null;
    var controller = null;

    function run() {
      var query = input.value.trim();
      if (controller) {
        controller.abort();
      }
      if (query.length < MIN_CHARS) {
        list.replaceChildren();
        list.hidden = true;
        return;
      }
      var params = new URLSearchParams({ q: query });
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
          if (!response.ok || (response.headers.get("Content-Type") || "").indexOf("json") === -1) {
            throw new Error("search failed");
          }
          return response.json();
        })
        .then(function (body) {
          showResults(fieldset, body.items || []);
        })
        .catch(function (error) {
          if (error.name !== "AbortError") {
            showMessage(list, "Search failed; reload the page and try again.");
          }
        });
    }

    function schedule() {
      window.clearTimeout(timer);
      timer = window.setTimeout(run, DEBOUNCE_MS);
    }

    input.addEventListener("input", schedule);
    if (sameCategory) {
      sameCategory.addEventListener("change", schedule);
    }
    // Enter in the search box searches now instead of submitting the review.
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        window.clearTimeout(timer);
        run();
      }
    });
  }

  form.querySelectorAll("fieldset.position").forEach(function (fieldset) {
    var select = part(fieldset, "alternate");
    select.addEventListener("change", function () {
      if (select.value) {
        setChosen(fieldset, "", "");
        setVerdict(fieldset, "swap");
      }
    });
    part(fieldset, "clear").addEventListener("click", function () {
      setChosen(fieldset, "", "");
    });
    wireSearch(fieldset);
  });

  // --- Lease heartbeat -------------------------------------------------------------------
  var csrfToken = form.querySelector('input[name="csrf_token"]').value;
  var leaseToken = form.querySelector('input[name="lease_token"]').value;
  var heartbeatUrl = form.getAttribute("data-heartbeat-url");
  var heartbeatMs = Number(form.getAttribute("data-heartbeat-ms")) || 60000;
  var leaseLost = false;

  function loseLease() {
    leaseLost = true;
    document.getElementById("lease-lost").hidden = false;
    document.getElementById("submit-review").disabled = true;
  }

  function heartbeat() {
    fetch(heartbeatUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify({ lease_token: leaseToken }),
    })
      .then(function (response) {
        if (response.status === 409 || response.status === 404) {
          loseLease();
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
  }

  var beat = window.setInterval(function () {
    if (leaseLost) {
      window.clearInterval(beat);
      return;
    }
    heartbeat();
  }, heartbeatMs);

  // --- Keyboard shortcuts ----------------------------------------------------------------
  var positions = Array.prototype.slice.call(form.querySelectorAll("fieldset.position"));
  var current = 0;

  function focusPosition(index) {
    if (positions.length === 0) {
      return;
    }
    current = (index + positions.length) % positions.length;
    positions.forEach(function (fieldset, i) {
      fieldset.classList.toggle("current", i === current);
    });
    positions[current].scrollIntoView({ block: "nearest" });
  }

  function swapForAlternate(fieldset, number) {
    var item = document.querySelector("#alternate-keys li:nth-child(" + number + ")");
    if (!item) {
      return;
    }
    var select = part(fieldset, "alternate");
    select.value = item.getAttribute("data-item-id");
    setChosen(fieldset, "", "");
    setVerdict(fieldset, "swap");
  }

  function typing(target) {
    var tag = target.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && target.type !== "radio");
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") {
        event.target.blur();
      }
      return;
    }
    var fieldset = positions[current];
    var handled = true;
    if (event.key === "j" || event.key === "ArrowDown") {
      focusPosition(current + 1);
    } else if (event.key === "k" || event.key === "ArrowUp") {
      focusPosition(current - 1);
    } else if (event.key === "c") {
      setVerdict(fieldset, "keep");
      focusPosition(current + 1);
    } else if (event.key === "x") {
      setVerdict(fieldset, "remove");
      focusPosition(current + 1);
    } else if (event.key === "s") {
      setVerdict(fieldset, "swap");
      part(fieldset, "search").focus();
    } else if (/^[1-9]$/.test(event.key)) {
      swapForAlternate(fieldset, Number(event.key));
    } else if (event.key === "n") {
      if (!leaseLost) {
        form.requestSubmit();
      }
    } else {
      handled = false;
    }
    if (handled) {
      event.preventDefault();
    }
  });
})();
