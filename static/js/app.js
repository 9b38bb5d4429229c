// BYOC's browser glue. Loaded as a file because the Content-Security-Policy
// allows no inline scripts.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Every htmx request carries the session's CSRF token as a header, so
  // hx-post, hx-put, hx-patch and hx-delete need no hidden form field.
  // htmx sends requests to this origin only (selfRequestsOnly).
  document.addEventListener("htmx:configRequest", function (evt) {
    var token = csrfToken();
    if (token) {
      evt.detail.headers["X-CSRF-Token"] = token;
    }
  });

  // ---- The live region ----

  // announce says msg through the page's live region (#flashes), in a
  // visually hidden line of its own.
  function announce(msg) {
    var region = document.getElementById("flashes");
    if (!region || !msg) {
      return;
    }
    var line = region.querySelector("[data-announcement]");
    if (!line) {
      line = document.createElement("p");
      line.className = "sr-only";
      line.setAttribute("role", "status");
      line.setAttribute("data-announcement", "");
      line.setAttribute("data-testid", "announcement");
      region.appendChild(line);
    }
    line.textContent = "";
    window.setTimeout(function () {
      line.textContent = msg;
    }, 50);
  }

  // ---- Failures: always told ----

  // notify shows msg in the page's notification area (#flashes), visibly,
  // in place of the previous message this script put there: kind "error"
  // as an alert, "success" as a status. A request sent from an open
  // dialog also gets the message in its form, which the dialog covers the
  // page with.
  function notify(kind, msg, form) {
    var region = document.getElementById("flashes");
    if (!region || !msg) {
      return;
    }
    var make = function () {
      var box = document.createElement("div");
      box.className = "alert " + (kind === "error" ? "alert-error" : "alert-success");
      box.setAttribute("role", kind === "error" ? "alert" : "status");
      box.setAttribute("data-client-notice", "");
      box.setAttribute("data-testid", "notice-" + kind);
      box.textContent = msg;
      return box;
    };
    clearNotices(region);
    region.appendChild(make());
    var box = form && form.isConnected && form.closest("dialog[open]") && form.querySelector("[data-form-messages]");
    if (box) {
      box.replaceChildren(make());
    }
  }

  function clearNotices(root) {
    root.querySelectorAll("[data-client-notice]").forEach(function (n) {
      n.remove();
    });
  }

  // failureMessage says what a request the server never answered means
  // (what: "could not be reached", ...): a change may or may not have been
  // made.
  function failureMessage(verb, what) {
    if (!verb || verb.toLowerCase() === "get") {
      return "The server " + what + ". Check your connection and try again.";
    }
    return (
      "The server " + what + ", so this change may not have been made. " +
      "Check your connection, then reload the page to see what is stored before trying again."
    );
  }

  // A request the browser could not complete (unreachable, timed out,
  // aborted) is told, and its control (re-enabled by htmx) gets focus
  // back when the disabled control had lost it.
  ["htmx:sendError", "htmx:timeout", "htmx:sendAbort"].forEach(function (name) {
    document.addEventListener(name, function (evt) {
      var cfg = evt.detail.requestConfig || {};
      var elt = cfg.elt || evt.detail.elt;
      var form = elt instanceof HTMLFormElement ? elt : null;
      notify("error", failureMessage(cfg.verb, name === "htmx:timeout" ? "did not answer in time" : "could not be reached"), form);
      cardAction = null;
      var control = form ? form.querySelector('button[type="submit"]') : elt;
      var active = document.activeElement;
      if (control instanceof HTMLElement && control.isConnected && (!active || active === document.body)) {
        if (!control.closest("dialog") || control.closest("dialog[open]")) {
          control.focus();
        }
      }
    });
  });

  // An error answer that is not the server's own (a proxy's 502 or 504
  // page while the server restarts) replaces nothing: it is told instead.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr || xhr.status < 400 || xhr.getResponseHeader("X-Byoc-Status")) {
      return;
    }
    evt.detail.shouldSwap = false;
    evt.detail.isError = false;
    var cfg = evt.detail.requestConfig || {};
    var elt = cfg.elt;
    notify("error", failureMessage(cfg.verb, "could not answer (status " + xhr.status + ")"), elt instanceof HTMLFormElement ? elt : null);
  });

  document.addEventListener("htmx:beforeRequest", function () {
    var region = document.getElementById("flashes");
    if (region) {
      clearNotices(region);
    }
  });

  // ---- Cancelling a running save ----

  // Each settings form's request carries an id of its own (X-Byoc-Attempt),
  // by which its Cancel button asks the server to stop it; the request's
  // own answer then says that nothing was saved (or that it was, when the
  // save had finished first).
  function newAttemptID() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    return Array.prototype.map
      .call(b, function (x) {
        return ("0" + x.toString(16)).slice(-2);
      })
      .join("");
  }

  // isSettingsForm and isVerify tell the cancellable requests: a settings
  // form's save, a card's Test connection.
  function isSettingsForm(elt) {
    return elt instanceof HTMLFormElement && elt.hasAttribute("data-configure-form");
  }
  function isVerify(elt) {
    return elt instanceof HTMLButtonElement && /\/verify$/.test(elt.getAttribute("hx-post") || "") && !!elt.closest(".provider-card");
  }

  document.addEventListener("htmx:configRequest", function (evt) {
    var elt = evt.detail.elt;
    if (isSettingsForm(elt) || isVerify(elt)) {
      var id = newAttemptID();
      evt.detail.headers["X-Byoc-Attempt"] = id;
      elt.setAttribute("data-attempt", id);
    }
  });

  // A card's Test connection gets a Cancel beside it while it runs (the
  // settings forms have theirs in the dialog's footer). The cancel route
  // is the one the page's dialogs name.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    var route = document.querySelector("[data-attempt-cancel]");
    if (!isVerify(elt) || !elt.id || !route) {
      return;
    }
    var btn = document.createElement("button");
    btn.type = "button";
    btn.className = "btn btn-sm btn-secondary";
    btn.textContent = "Cancel";
    btn.setAttribute("data-attempt-cancel", route.getAttribute("data-attempt-cancel"));
    btn.setAttribute("data-attempt-for", elt.id);
    btn.setAttribute("data-testid", elt.id + "-cancel");
    elt.insertAdjacentElement("afterend", btn);
  });

  function resetCancel(owner) {
    owner.removeAttribute("data-attempt");
    owner.querySelectorAll("[data-attempt-cancel]").forEach(function (btn) {
      btn.disabled = false;
      btn.textContent = "Cancel";
    });
    if (owner.id) {
      document.querySelectorAll('[data-attempt-for="' + CSS.escape(owner.id) + '"]').forEach(function (btn) {
        btn.remove();
      });
    }
  }

  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.requestConfig && evt.detail.requestConfig.elt;
    if (isSettingsForm(elt) || isVerify(elt)) {
      resetCancel(elt);
    }
  });

  document.addEventListener("click", function (evt) {
    var btn = evt.target instanceof Element ? evt.target.closest("[data-attempt-cancel]") : null;
    var form = btn && (btn.hasAttribute("data-attempt-for") ? document.getElementById(btn.getAttribute("data-attempt-for")) : btn.closest("form"));
    var id = form && form.getAttribute("data-attempt");
    if (!id || !form.classList.contains("htmx-request")) {
      return;
    }
    evt.preventDefault();
    btn.disabled = true;
    btn.textContent = "Cancelling…";
    var unknown = function () {
      if (form.getAttribute("data-attempt") === id) {
        resetCancel(form);
        form.setAttribute("data-attempt", id);
        notify("error", "It could not be stopped any more: it is finishing, and its outcome will show here.", form);
      }
    };
    window
      .fetch(btn.getAttribute("data-attempt-cancel") + "/" + encodeURIComponent(id) + "/cancel", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken(), "HX-Request": "true" },
      })
      .then(function (res) {
        if (res.status !== 202) {
          unknown();
        }
      }, unknown);
  });

  // ---- Outcomes of a dialog closed while its save runs ----

  // follow tells the outcome of form's save in the notification area once
  // it arrives, when its dialog is no longer open by then (closed, or
  // closed and opened again on a fresh form). It listens on the form from
  // the moment the request starts, so the outcome is told whichever comes
  // first, the answer or the dialog's close event; the request's own
  // element hears it even when it is no longer in the page.
  function follow(form) {
    var dialog = form.closest("dialog");
    if (!dialog) {
      return;
    }
    var title = document.getElementById(dialog.id.replace(/^dialog-/, "card-") + "-title");
    var name = title ? title.textContent.trim() : "The connection";
    form.addEventListener(
      "htmx:afterRequest",
      function (evt) {
        var xhr = evt.detail.xhr;
        if (dialog.open) {
          return; // shown in the dialog itself
        }
        if (!xhr || !xhr.status) {
          return; // told by the failure handler above
        }
        var tpl = document.createElement("template");
        tpl.innerHTML = xhr.responseText || "";
        var ok = tpl.content.querySelector("[data-configure-success]");
        if (ok) {
          var head = ok.querySelector(".font-semibold");
          notify("success", (head ? head.textContent.trim() : name + " is connected") + ".");
          return;
        }
        var msgs = tpl.content.querySelector("[data-form-messages]");
        var field = tpl.content.querySelector(".field-error");
        var msg = (msgs && msgs.textContent.trim()) || (field && field.textContent.trim()) || "see the form for details.";
        notify("error", name + " was not saved: " + msg);
      },
      { once: true }
    );
  }

  // ---- Secret fields: show / hide ----

  document.addEventListener("click", function (evt) {
    var btn = evt.target instanceof Element ? evt.target.closest("[data-secret-toggle]") : null;
    if (!btn) {
      return;
    }
    var input = document.getElementById(btn.getAttribute("data-secret-toggle"));
    if (!input) {
      return;
    }
    var show = input.type === "password";
    input.type = show ? "text" : "password";
    btn.setAttribute("aria-pressed", show ? "true" : "false");
    if (btn.firstChild && btn.firstChild.nodeType === Node.TEXT_NODE) {
      btn.firstChild.nodeValue = show ? "Hide" : "Show";
    }
  });

  // ---- Copy buttons ----

  document.addEventListener("click", function (evt) {
    var btn = evt.target instanceof Element ? evt.target.closest("[data-copy]") : null;
    if (!btn) {
      return;
    }
    var source = document.getElementById(btn.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var text = source.textContent.trim();
    var done = function () {
      btn.textContent = "Copied";
      announce("Copied to the clipboard.");
      window.setTimeout(function () {
        btn.textContent = "Copy";
      }, 2000);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {
        selectText(source);
        announce("Press Ctrl+C to copy the selected text.");
      });
    } else {
      selectText(source);
      announce("Press Ctrl+C to copy the selected text.");
    }
  });

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // ---- Settings forms: messages only ----

  // clearMessages removes a form's messages: a new attempt starts clean.
  function clearMessages(form) {
    var box = form.querySelector("[data-form-messages]");
    if (box) {
      box.replaceChildren();
    }
    form.querySelectorAll(".field-error").forEach(function (p) {
      p.remove();
    });
    form.querySelectorAll('[aria-invalid="true"]').forEach(function (control) {
      control.removeAttribute("aria-invalid");
      control.classList.remove("input-invalid");
      var hint = document.getElementById(control.id + "-hint");
      if (hint) {
        control.setAttribute("aria-describedby", hint.id);
      } else {
        control.removeAttribute("aria-describedby");
      }
    });
  }

  // takeMessages puts the messages of fresh, the form as the server
  // re-rendered it, into form, leaving every input as the user left it
  // (the server never sends a secret back, so swapping the inputs would
  // lose what was typed).
  function takeMessages(form, fresh) {
    clearMessages(form);
    var box = form.querySelector("[data-form-messages]");
    var freshBox = fresh.querySelector("[data-form-messages]");
    if (box && freshBox) {
      box.replaceChildren.apply(box, Array.prototype.slice.call(document.importNode(freshBox, true).childNodes));
    }
    fresh.querySelectorAll("[data-field]").forEach(function (freshField) {
      var name = freshField.getAttribute("data-field");
      var field = form.querySelector('[data-field="' + CSS.escape(name) + '"]');
      var freshError = freshField.querySelector(".field-error");
      if (!field || !freshError) {
        return;
      }
      var control = field.querySelector("input, select, textarea");
      var freshControl = freshField.querySelector("input, select, textarea");
      if (control && freshControl) {
        control.setAttribute("aria-invalid", "true");
        control.classList.add("input-invalid");
        var describedBy = freshControl.getAttribute("aria-describedby");
        if (describedBy) {
          control.setAttribute("aria-describedby", describedBy);
        }
      }
      field.appendChild(document.importNode(freshError, true));
    });
    var first = form.querySelector('[aria-invalid="true"]') || form.querySelector('[role="alert"]');
    if (first) {
      if (!first.matches("input, select, textarea")) {
        first.setAttribute("tabindex", "-1");
      }
      first.focus();
    }
  }

  // A refused save answers the form again: only its messages are taken.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var elt = evt.detail.requestConfig && evt.detail.requestConfig.elt;
    if (!(elt instanceof HTMLFormElement) || !elt.hasAttribute("data-configure-form") || !elt.isConnected) {
      return;
    }
    var tpl = document.createElement("template");
    tpl.innerHTML = evt.detail.serverResponse || "";
    var fresh = tpl.content.querySelector("form[data-configure-form]");
    if (!fresh || fresh.id !== elt.id) {
      return;
    }
    evt.detail.shouldSwap = false;
    takeMessages(elt, tpl.content);
    markDirty(elt);
  });

  // Remembers which control of which card started a request, to give
  // focus back to it (or to the card's heading) once the card is replaced.
  var cardAction = null;

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!(elt instanceof Element)) {
      return;
    }
    if (elt instanceof HTMLFormElement && elt.hasAttribute("data-configure-form")) {
      clearMessages(elt);
      follow(elt);
      return;
    }
    var card = elt.closest(".provider-card");
    if (card) {
      card.querySelectorAll('[data-testid="' + card.id + '-result"]').forEach(function (n) {
        n.remove();
      });
      cardAction = { card: card.id, control: elt.id };
    }
  });

  // After a card was replaced: its result goes to the live region, focus to
  // the control that was used (or the card's heading when it is gone).
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll(".provider-card[data-announce]").forEach(function (card) {
      announce(card.getAttribute("data-announce"));
      card.removeAttribute("data-announce");
      if (cardAction && cardAction.card === card.id) {
        var control = cardAction.control && document.getElementById(cardAction.control);
        if (!control || control.disabled || !card.contains(control)) {
          control = document.getElementById(card.id + "-title");
        }
        if (control && !document.querySelector("dialog[open]")) {
          control.focus();
        }
        cardAction = null;
      }
    });
    adoptNextForms();
  });

  // ---- Dialogs ----

  // A copy of each dialog body as the page delivered it: a dialog is reset
  // to it whenever it closes, so no typed secret stays in the page and a
  // success panel gives way to a fresh form. The copy drops style
  // attributes (browsers' autofill leaves style="" on fields; putting that
  // back would be an inline style the CSP refuses).
  var pristine = new WeakMap();
  // The id of the element that opened each dialog, to give focus back to
  // (htmx may have replaced the element itself meanwhile).
  var openers = new WeakMap();

  function firstField(root) {
    return root.querySelector(
      'input:not([type="hidden"]):not([disabled]), select:not([disabled]), textarea:not([disabled])'
    );
  }

  function remember(body) {
    if (pristine.has(body)) {
      return;
    }
    var copy = body.cloneNode(true);
    copy.removeAttribute("style");
    copy.querySelectorAll("[style]").forEach(function (el) {
      el.removeAttribute("style");
    });
    pristine.set(body, copy);
    body.removeAttribute("data-dirty");
  }

  function resetDialog(dialog) {
    var body = dialog.querySelector("[data-dialog-body]");
    if (!body || !pristine.has(body) || !body.hasAttribute("data-dirty")) {
      return;
    }
    body.replaceChildren.apply(body, Array.prototype.slice.call(pristine.get(body).cloneNode(true).childNodes));
    body.removeAttribute("data-dirty");
    var form = body.querySelector("form[data-title]");
    var title = dialog.querySelector("[data-form-title]");
    if (form && title) {
      title.textContent = form.getAttribute("data-title");
    }
    if (window.htmx) {
      window.htmx.process(body);
    }
  }

  // adoptNextForms makes each <template data-next-form="<body id>"> the
  // form that dialog body shows from now on (the Update form after a save,
  // the Configure form after a disconnect): at once when its dialog is
  // closed, else when it closes.
  function adoptNextForms() {
    document.querySelectorAll("template[data-next-form]").forEach(function (tpl) {
      var body = document.getElementById(tpl.getAttribute("data-next-form"));
      tpl.remove();
      if (!body) {
        return;
      }
      var copy = body.cloneNode(false);
      copy.removeAttribute("style");
      copy.replaceChildren(document.importNode(tpl.content, true));
      pristine.set(body, copy);
      body.setAttribute("data-dirty", "");
      var dialog = body.closest("dialog");
      if (dialog && !dialog.open) {
        resetDialog(dialog);
      }
    });
  }

  // A dialog body is dirty once anything was typed into it or swapped in.
  function markDirty(el) {
    var body = el instanceof Element ? el.closest("[data-dialog-body]") : null;
    if (body) {
      body.setAttribute("data-dirty", "");
    }
  }
  document.addEventListener("input", function (evt) {
    markDirty(evt.target);
  });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    markDirty(evt.detail && evt.detail.target);
  });

  function openDialog(dialog, opener) {
    var body = dialog.querySelector("[data-dialog-body]");
    if (body) {
      remember(body);
    }
    resetDialog(dialog);
    if (opener && opener.id) {
      openers.set(dialog, opener.id);
    }
    if (!dialog.open) {
      dialog.showModal();
    }
    var field = firstField(dialog);
    if (field) {
      field.focus();
    }
  }

  var pressedOn = null;
  document.addEventListener("mousedown", function (evt) {
    pressedOn = evt.target;
  });

  document.addEventListener("click", function (evt) {
    var target = evt.target instanceof Element ? evt.target : null;
    if (!target) {
      return;
    }
    var open = target.closest("[data-dialog-open]");
    if (open) {
      var dialog = document.getElementById(open.getAttribute("data-dialog-open"));
      if (dialog && typeof dialog.showModal === "function") {
        evt.preventDefault();
        openDialog(dialog, open);
      }
      return;
    }
    var close = target.closest("[data-dialog-close]");
    if (close) {
      var d = close.closest("dialog");
      if (d) {
        evt.preventDefault();
        d.close("cancel");
      }
      return;
    }
    // A click on the backdrop lands on the <dialog> itself, outside its box
    // (and began there: a text selection dragged out of a field does not
    // close the dialog).
    if (target instanceof HTMLDialogElement && target.open && target === pressedOn) {
      var r = target.getBoundingClientRect();
      var inside = evt.clientX >= r.left && evt.clientX <= r.right && evt.clientY >= r.top && evt.clientY <= r.bottom;
      if (!inside) {
        target.close("cancel");
      }
    }
  });

  // Closing (X, Cancel, Done, Esc, backdrop, or by itself) resets the form
  // and gives focus back to the button that opened the dialog.
  document.addEventListener(
    "close",
    function (evt) {
      var dialog = evt.target;
      if (!(dialog instanceof HTMLDialogElement)) {
        return;
      }
      resetDialog(dialog);
      var id = openers.get(dialog);
      var opener = id && document.getElementById(id);
      if (opener) {
        opener.focus();
      }
    },
    true
  );

  // After htmx swapped something into a dialog: focus the first field with
  // a message (or the form-wide message), or the success panel's button;
  // a success panel closes its dialog by itself after data-autoclose ms.
  document.addEventListener("htmx:afterSettle", function (evt) {
    var target = evt.detail && evt.detail.target;
    if (!(target instanceof Element)) {
      return;
    }
    var dialog = target.closest("dialog");
    if (!dialog || !dialog.open) {
      return;
    }
    var success = target.querySelector("[data-autoclose]");
    if (success) {
      var done = success.querySelector("[data-dialog-close]");
      if (done) {
        done.focus();
      }
      autoclose(dialog, success);
      return;
    }
    var invalid = target.querySelector('[aria-invalid="true"]') || target.querySelector('[role="alert"]');
    if (invalid) {
      if (!invalid.matches("input, select, textarea")) {
        invalid.setAttribute("tabindex", "-1");
      }
      invalid.focus();
    }
  });

  // autoclose closes dialog data-autoclose ms after its success panel
  // appeared, but never while the pointer is over the panel (moved there
  // since it appeared) or the user is working in it (a key pressed, a
  // click, focus moved within it): it waits until they have left it.
  function autoclose(dialog, success) {
    var ms = parseInt(success.getAttribute("data-autoclose"), 10) || 2000;
    var pointer = false;
    var inUse = false;
    var mark = function () {
      inUse = true;
    };
    success.addEventListener("pointermove", function () {
      pointer = true;
    });
    success.addEventListener("pointerleave", function () {
      pointer = false;
    });
    success.addEventListener("keydown", mark);
    success.addEventListener("pointerdown", mark);
    window.setTimeout(function () {
      success.addEventListener("focusin", mark);
    }, 0);
    success.addEventListener("focusout", function (evt) {
      if (!evt.relatedTarget || !success.contains(evt.relatedTarget)) {
        inUse = false;
      }
    });
    var check = function () {
      if (!dialog.open || !success.isConnected) {
        return;
      }
      if (inUse || pointer) {
        window.setTimeout(check, ms);
        return;
      }
      dialog.close("done");
    };
    window.setTimeout(check, ms);
  }

  // ---- Confirmation ----

  // Requests with hx-confirm ask in the page's confirm dialog, when it has
  // one, instead of window.confirm.
  document.addEventListener("htmx:confirm", function (evt) {
    var question = evt.detail.question;
    var dialog = document.getElementById("confirm-dialog");
    if (!question || !dialog || typeof dialog.showModal !== "function") {
      return;
    }
    evt.preventDefault();
    var elt = evt.detail.elt;
    dialog.querySelector("#confirm-dialog-message").textContent = question;
    var accept = dialog.querySelector("[data-confirm-accept]");
    accept.textContent = (elt && elt.getAttribute("data-confirm-action")) || "Confirm";
    var onAccept = function () {
      dialog.close("accept");
    };
    var onClose = function () {
      accept.removeEventListener("click", onAccept);
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue === "accept") {
        evt.detail.issueRequest(true);
      }
    };
    dialog.returnValue = "";
    accept.addEventListener("click", onAccept);
    dialog.addEventListener("close", onClose);
    if (elt && elt.id) {
      openers.set(dialog, elt.id);
    }
    dialog.showModal();
    var cancel = dialog.querySelector("[data-dialog-close]");
    if (cancel) {
      cancel.focus();
    }
  });
})();
