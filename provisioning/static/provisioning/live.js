// Live status without reloading the page. The pages work without it; it only adds:
// - an element with data-live-url is fetched again every data-live-interval ms (1000 by default) and
//   replaced when its data-version (or, without one, its content) changed, until it carries data-final;
// - a form with data-live-submit inside such an element posts in the background and shows the answer;
// - a button with data-copy="<id>" copies the value or text of that element (shown only with scripts);
// - an element with data-seconds-left counts down ("m:ss left"); at zero it shows its data-expired-text
//   and disables the buttons and fields of the form its data-disables names (a CSS selector).
(function () {
  "use strict";

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function left(seconds) {
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var text = (h ? h + ":" + pad(m) : String(m)) + ":" + pad(seconds % 60);
    return text + " left";
  }

  function countdowns(root) {
    root.querySelectorAll("[data-seconds-left]").forEach(function (el) {
      if (!el.liveEnd) {
        // Counted from the server's figure, so that the browser's clock does not matter.
        el.liveEnd = Date.now() + parseFloat(el.getAttribute("data-seconds-left")) * 1000;
      }
      var seconds = Math.max(0, Math.ceil((el.liveEnd - Date.now()) / 1000));
      if (seconds > 0) {
        el.textContent = left(seconds);
        return;
      }
      if (el.classList.contains("expired")) {
        return;
      }
      el.classList.add("expired");
      el.textContent = el.getAttribute("data-expired-text") || "expired";
      var form = el.getAttribute("data-disables");
      if (form) {
        document.querySelectorAll(form + " button, " + form + " input, " + form + " select, " + form + " textarea")
          .forEach(function (field) {
            field.disabled = true;
          });
      }
    });
  }

  function fresh(id, html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    return doc.getElementById(id);
  }

  function changed(current, next) {
    var a = current.getAttribute("data-version");
    var b = next.getAttribute("data-version");
    return a !== null && b !== null ? a !== b : current.innerHTML !== next.innerHTML;
  }

  function swap(id, html) {
    var current = document.getElementById(id);
    var next = current && fresh(id, html);
    if (!next) {
      return current;
    }
    if (changed(current, next)) {
      current.replaceWith(next);
      enhance(next);
      return next;
    }
    return current;
  }

  function schedule(element) {
    if (!element || !element.id || element.hasAttribute("data-final")) {
      return;
    }
    var interval = parseInt(element.getAttribute("data-live-interval") || "1000", 10);
    window.setTimeout(function () {
      poll(element.id);
    }, interval);
  }

  function poll(id) {
    var element = document.getElementById(id);
    if (!element) {
      return;
    }
    fetch(element.getAttribute("data-live-url"), {
      credentials: "same-origin",
      headers: { "X-Live": "1" },
    })
      .then(function (answer) {
        return answer.ok ? answer.text() : Promise.reject(answer.status);
      })
      .then(function (html) {
        schedule(swap(id, html));
      })
      .catch(function () {
        schedule(document.getElementById(id)); // a lost poll: try again later
      });
  }

  function enhance(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
    });
    countdowns(root);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    var source = document.getElementById(button.getAttribute("data-copy"));
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      button.textContent = "Copied";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        source.select();
      });
    } else {
      source.select();
      document.execCommand("copy");
      done();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var live = form.closest("[data-live-url]");
    if (!form.hasAttribute("data-live-submit") || !live) {
      return;
    }
    event.preventDefault();
    var id = live.id;
    form.querySelectorAll("button").forEach(function (button) {
      button.disabled = true;
    });
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Live": "1" },
    })
      .then(function (answer) {
        return answer.text();
      })
      .then(function (html) {
        var next = swap(id, html);
        if (next && next.hasAttribute("data-final")) {
          return;
        }
        form.querySelectorAll("button").forEach(function (button) {
          button.disabled = false;
        });
      });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(function (element) {
      enhance(element);
      schedule(element);
    });
    countdowns(document);
    window.setInterval(function () {
      countdowns(document);
    }, 1000);
  });
})();
