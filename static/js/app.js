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
    // Phone fields are sent without their display formatting: a leading +
    // and digits. The server normalizes them to E.164.
    var elt = evt.detail.elt;
    if (elt && elt.querySelectorAll && evt.detail.formData) {
      elt.querySelectorAll("input[data-phone]").forEach(function (input) {
        if (input.name && evt.detail.formData.has(input.name)) {
          evt.detail.formData.set(input.name, phoneDigits(input.value));
        }
      });
    }
  });

  // ---- Phone numbers: formatted as they are typed ----

  // phoneDigits keeps a leading + and the digits.
  function phoneDigits(value) {
    var v = String(value || "").trim();
    var plus = v.charAt(0) === "+";
    var digits = v.replace(/\D/g, "");
    return (plus ? "+" : "") + digits;
  }

  // formatPhone groups a number for reading: North American numbers as
  // (202) 555-0142 or +1 (202) 555-0142, others in groups after the +.
  function formatPhone(value) {
    var raw = phoneDigits(value);
    var plus = raw.charAt(0) === "+";
    var d = raw.replace("+", "");
    if (!d) {
      return plus ? "+" : "";
    }
    if (plus && d.charAt(0) === "1") {
      return "+1" + (d.length > 1 ? " " + nanp(d.slice(1, 11)) : "") + rest(d, 11);
    }
    if (!plus && d.length <= 10) {
      return nanp(d);
    }
    if (!plus && d.charAt(0) === "1" && d.length <= 11) {
      return "1 " + nanp(d.slice(1));
    }
    // International: the country code is unknown here, so group loosely.
    var groups = [];
    for (var i = 0; i < d.length; i += i < 2 ? 2 : 3) {
      groups.push(d.slice(i, i < 2 ? i + 2 : i + 3));
    }
    return (plus ? "+" : "") + groups.join(" ");
  }

  function nanp(d) {
    if (d.length <= 3) {
      return d.length === 3 ? "(" + d + ")" : d;
    }
    if (d.length <= 6) {
      return "(" + d.slice(0, 3) + ") " + d.slice(3);
    }
    return "(" + d.slice(0, 3) + ") " + d.slice(3, 6) + "-" + d.slice(6, 10);
  }

  function rest(d, from) {
    return d.length > from ? " " + d.slice(from) : "";
  }

  document.addEventListener("input", function (evt) {
    var input = evt.target;
    if (!(input instanceof HTMLInputElement) || !input.hasAttribute("data-phone")) {
      return;
    }
    // Deleting a formatting character must not be undone at once.
    if (evt.inputType && evt.inputType.indexOf("delete") === 0) {
      return;
    }
    var atEnd = input.selectionStart === input.value.length;
    var formatted = formatPhone(input.value);
    if (formatted !== input.value) {
      input.value = formatted;
      if (atEnd) {
        input.setSelectionRange(formatted.length, formatted.length);
      }
    }
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
    if (window.htmx) {
      window.htmx.process(body);
    }
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
      var ms = parseInt(success.getAttribute("data-autoclose"), 10) || 2000;
      window.setTimeout(function () {
        if (dialog.open && success.isConnected) {
          dialog.close("done");
        }
      }, ms);
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
